"Stage 07's detectors find what was planted in real Fashion-MNIST: flipped labels, and a slice of corrupted images."
import numpy as np, pandas as pd, pytest, torch
from probing_sota.data import load_dataset, stratified_subset, BatchTransform
from probing_sota.models import create_model
from probing_sota.why import label_issue_check, find_slices, corrupt

@pytest.fixture(scope='module')
def probe():
    "ImageNet features of real Fashion-MNIST images, a linear head fitted on 2000 of them, and a function embedding any images."
    from sklearn.linear_model import LogisticRegression
    try: train, test = load_dataset('fashion_mnist', 'train'), load_dataset('fashion_mnist', 'test')
    except Exception as e: pytest.skip(f'real Fashion-MNIST not found: {e}')
    train, test = stratified_subset(train, 2000, seed=0), stratified_subset(test, 2000, seed=1)
    torch.manual_seed(0)
    model, info = create_model('efficientnet_lite0', num_classes=10, weights='imagenet', input_size=64)
    model.eval(); tf = BatchTransform(64, info.mean, info.std)
    @torch.no_grad()
    def embed(images):
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return torch.cat([model.forward_head(model.forward_features(tf(x[i:i + 250])), pre_logits=True)
                          for i in range(0, len(x), 250)]).numpy()
    clf = LogisticRegression(max_iter=3000).fit(embed(train.images), train.labels)
    return test, embed, clf

def table_of(labels, probs):
    pred = probs.argmax(1)
    return pd.DataFrame({'index': np.arange(len(labels)), 'label': labels, 'pred': pred, 'correct': pred == labels})

def test_planted_label_flips_are_found(probe):
    test, embed, clf = probe
    probs = clf.predict_proba(embed(test.images))
    res = label_issue_check(table_of(test.labels, probs), probs, rate=0.05, seed=0)
    print(res)
    assert res['planted'] == 100
    assert res['recall'] >= 0.6 and res['precision_new_flags'] >= 0.6, res

def test_planted_slice_ranks_first(probe):
    test, embed, clf = probe
    images = np.asarray(test.images).copy()
    trousers = np.flatnonzero(test.labels == 1); planted = trousers[::2]  # half of one class, the model's best
    images[planted] = corrupt(images[planted], 'noise', seed=0)
    emb = embed(images); probs = clf.predict_proba(emb)
    t = table_of(test.labels, probs)
    assert (~t.correct.to_numpy()[planted]).mean() > 0.8  # the corruption makes them fail
    slices, slice_of = find_slices(emb, t, probs, seed=0)
    top = np.flatnonzero(slice_of == 1)
    hit = len(set(top) & set(planted))
    print(slices.head(3), hit, len(top), len(planted))
    assert hit/len(top) >= 0.9 and hit/len(planted) >= 0.8, (hit, len(top), len(planted))
