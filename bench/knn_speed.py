"""k-NN prediction speed: ours (NumPy, float32 GEMM in blocks of test rows, linear-time selection) against scikit-learn's
brute-force KNeighborsClassifier and against the textbook two-loop reference, on the same real Fashion-MNIST pixels, in one process.

    python bench/knn_speed.py [--k 5] [--n-train 60000] [--n-test 10000] [--chunk 512] [--loop-test 10] [--repeats 1]

The two loops are far too slow for 600 million pairs: they run on --loop-test test images against the same training set
and their time is extrapolated linearly (one distance per pair). Prints seconds, accuracies, agreement and the ratios."""
import argparse, time
from probing_sota.data import load_dataset, stratified_subset
from probing_sota.baselines import flat_features, knn_predict, knn_two_loops

def best_time(fn, repeats):
    "The fastest of `repeats` runs (the machine may be shared) and the last result."
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t)
    return min(times), out

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--k', type=int, default=5); ap.add_argument('--n-train', type=int, default=60000)
    ap.add_argument('--n-test', type=int, default=10000); ap.add_argument('--chunk', type=int, default=512)
    ap.add_argument('--loop-test', type=int, default=10); ap.add_argument('--repeats', type=int, default=1)
    a = ap.parse_args()
    from sklearn.neighbors import KNeighborsClassifier
    train = stratified_subset(load_dataset('fashion_mnist', 'train'), a.n_train)
    test = stratified_subset(load_dataset('fashion_mnist', 'test'), a.n_test)
    Xtr, ytr, Xte, yte = flat_features(train), train.labels, flat_features(test), test.labels
    print(f"Fashion-MNIST: {len(Xtr)} train x {len(Xte)} test, {Xtr.shape[1]} float32 pixels, k={a.k}, chunk={a.chunk} "
          f"(a block of distances: {a.chunk*len(Xtr)*4/2**20:.0f} MiB)")

    t_ours, (p_ours, _) = best_time(lambda: knn_predict(Xtr, ytr, Xte, a.k, chunk=a.chunk), a.repeats)
    sk = KNeighborsClassifier(n_neighbors=a.k, algorithm='brute')
    t_sk, p_sk = best_time(lambda: sk.fit(Xtr, ytr).predict(Xte), a.repeats)
    print(f"  ours                     {t_ours:8.2f} s   accuracy {(p_ours == yte).mean():.4f}")
    print(f"  scikit-learn brute       {t_sk:8.2f} s   accuracy {(p_sk == yte).mean():.4f}   same prediction on {(p_ours == p_sk).mean():.2%}")

    m = min(a.loop_test, len(Xte))
    t_loop, (p_loop, _) = best_time(lambda: knn_two_loops(Xtr, ytr, Xte[:m], a.k), 1)
    t_ours_m, (p_ours_m, _) = best_time(lambda: knn_predict(Xtr, ytr, Xte[:m], a.k, chunk=a.chunk), max(a.repeats, 3))
    t_loop_full = t_loop*len(Xte)/m
    print(f"  two loops, {m} test        {t_loop:8.2f} s   ({t_loop/(m*len(Xtr))*1e6:.2f} us a pair); extrapolated to {len(Xte)}: {t_loop_full:.0f} s "
          f"(same prediction as ours on {(p_loop == p_ours_m).mean():.0%} of the {m})")
    print(f"  ours, same {m} test        {t_ours_m:8.3f} s")
    print(f"ratios: ours/scikit-learn time {t_ours/t_sk:.2f}x (target <= 1.5; scikit-learn is {t_sk/t_ours:.2f}x ours); "
          f"two loops (extrapolated)/ours {t_loop_full/t_ours:.0f}x (target >= 100); two loops/ours on the same {m} test images {t_loop/t_ours_m:.0f}x")
