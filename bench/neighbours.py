"""Nearest training images in embedding space: ours (`why.nearest`: exact cosine by float32 matrix products in chunks of
queries, top-k on the device) against scikit-learn's brute-force NearestNeighbors (cosine) and, when installed, faiss's exact
inner-product index (`pip install faiss-cpu`), on the same embeddings, in one process.

    python bench/neighbours.py [--run runs/quickstart] [--queries hard|all] [--k 10] [--repeats 3]

With a run that has `embeddings/train.npy` and `embeddings/test.npy` (stage 03 and 04) it uses those and, by default, the
run's hard test examples as queries (what stage 07 does); without one, random embeddings of the quickstart's shape
(886 queries, 54 000 training images, 1280 dimensions). Prints seconds, agreement of the neighbour lists, and the ratios."""
import argparse
from pathlib import Path
import numpy as np, pandas as pd, torch
from probing_sota.core import load_embeddings
from probing_sota.why import nearest
from knn_speed import best_time  # bench/ is the script's folder, so on sys.path

def inputs(run, queries):
    "Query and base embeddings (float32) from a run, or random ones of the quickstart's shape."
    run = Path(run)
    if (run/'embeddings/train.npy').exists() and (run/'embeddings/test.npy').exists():
        test, base = load_embeddings(run).astype(np.float32), load_embeddings(run, 'train').astype(np.float32)
        if queries == 'hard':
            table, hard = pd.read_csv(run/'predictions.csv'), pd.read_csv(run/'hard/hard_examples.csv')
            test = test[table['index'].isin(hard['index']).to_numpy()]
        return test, base, f'{run} ({queries} test examples)'
    rng = np.random.default_rng(0)
    return rng.normal(size=(886, 1280)).astype(np.float32), rng.normal(size=(54000, 1280)).astype(np.float32), 'random'

def agreement(a, b):
    "Share of the neighbour lists' entries the two methods have in common (ties may order differently)."
    return float(np.mean([len(set(x) & set(y))/len(x) for x, y in zip(a, b)]))

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--run', default='runs/quickstart'); ap.add_argument('--queries', default='hard', choices=['hard', 'all'])
    ap.add_argument('--k', type=int, default=10); ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    q, b, what = inputs(a.run, a.queries)
    print(f"{len(q)} queries x {len(b)} training embeddings, {b.shape[1]} dimensions, k={a.k}, {torch.get_num_threads()} threads; {what}")
    t_ours, (_, i_ours) = best_time(lambda: nearest(q, b, a.k, device='cpu'), a.repeats)
    print(f"ours (torch matmul in chunks):        {t_ours:7.3f} s")
    from sklearn.neighbors import NearestNeighbors
    def sk():
        return NearestNeighbors(n_neighbors=a.k, metric='cosine', algorithm='brute').fit(b).kneighbors(q)[1]
    t_sk, i_sk = best_time(sk, a.repeats)
    print(f"scikit-learn NearestNeighbors brute: {t_sk:7.3f} s  {t_sk/t_ours:5.2f}x ours' time; agreement {agreement(i_ours, i_sk):.4f}")
    try: import faiss
    except ImportError: print("faiss: not installed (pip install faiss-cpu) - skipped")
    else:
        def fa():
            qn, bn = q/np.linalg.norm(q, axis=1, keepdims=True), b/np.linalg.norm(b, axis=1, keepdims=True)
            index = faiss.IndexFlatIP(b.shape[1]); index.add(np.ascontiguousarray(bn, np.float32))
            return index.search(np.ascontiguousarray(qn, np.float32), a.k)[1]
        t_fa, i_fa = best_time(fa, a.repeats)
        print(f"faiss IndexFlatIP (exact):           {t_fa:7.3f} s  {t_fa/t_ours:5.2f}x ours' time; agreement {agreement(i_ours, i_fa):.4f}")
