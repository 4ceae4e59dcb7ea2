"CIFAR-10 and CIFAR-100 from folders in their original python format, written here byte for byte as the real archives lay them out."
import pickle, numpy as np, pytest
from probing_sota.data import load_dataset
from probing_sota.core import DataNotFoundError

def _write_batch(path, images, labels, key=b'labels', extra=None):
    d = {b'batch_label': b'testing batch', key: labels, b'data': images.transpose(0, 3, 1, 2).reshape(len(images), -1),
         b'filenames': [f'img_{i}.png'.encode() for i in range(len(images))], **(extra or {})}
    with open(path, 'wb') as f: pickle.dump(d, f, protocol=2)

@pytest.fixture
def cifar10_root(tmp_path):
    rng = np.random.default_rng(0); d = tmp_path/'cifar-10-batches-py'; d.mkdir()
    batches = []
    for i in range(1, 6):
        imgs, labels = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, 20)]
        _write_batch(d/f'data_batch_{i}', imgs, labels); batches.append((imgs, labels))
    test = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, 30)]
    _write_batch(d/'test_batch', *test)
    names = [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog', b'frog', b'horse', b'ship', b'truck']
    with open(d/'batches.meta', 'wb') as f: pickle.dump({b'num_cases_per_batch': 20, b'label_names': names, b'num_vis': 3072}, f, protocol=2)
    return tmp_path, batches, test

def test_cifar10_from_folder(cifar10_root):
    root, batches, test = cifar10_root
    tr = load_dataset('cifar10', 'train', data_root=root, download=False)
    te = load_dataset('cifar10', 'test', data_root=root, download=False)
    assert tr.images.shape == (100, 32, 32, 3) and te.images.shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(tr.images, np.concatenate([b[0] for b in batches]))  # order and layout kept
    assert tr.labels.tolist() == sum((b[1] for b in batches), []) and te.labels.tolist() == test[1]
    assert tr.classes[3] == 'cat' and tr.index.tolist() == list(range(100))

def test_cifar10_found_through_env_and_explicit_root_wins(cifar10_root, tmp_path_factory, monkeypatch):
    monkeypatch.setenv('PROBING_SOTA_DATA', str(cifar10_root[0]))
    assert len(load_dataset('cifar10', 'test', download=False)) == 30  # found through $PROBING_SOTA_DATA
    other = tmp_path_factory.mktemp('other'); (other/'cifar-10-batches-py').mkdir()
    for i in range(1, 6): _write_batch(other/'cifar-10-batches-py'/f'data_batch_{i}', np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    _write_batch(other/'cifar-10-batches-py'/'test_batch', np.zeros((5, 32, 32, 3), np.uint8), [0]*5)
    with open(other/'cifar-10-batches-py'/'batches.meta', 'wb') as f: pickle.dump({b'label_names': [b'a', b'b']}, f)
    assert len(load_dataset('cifar10', 'test', data_root=other, download=False)) == 5  # the explicit root comes first
    with pytest.raises(DataNotFoundError, match='cifar-100-python'): load_dataset('cifar100', 'test', download=False)

def test_cifar100_from_folder(tmp_path):
    rng = np.random.default_rng(1); d = tmp_path/'cifar-100-python'; d.mkdir()
    for split, n in [('train', 40), ('test', 10)]:
        _write_batch(d/split, rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), [int(v) for v in rng.integers(0, 100, n)],
                     key=b'fine_labels', extra={b'coarse_labels': [0]*n})
    with open(d/'meta', 'wb') as f: pickle.dump({b'fine_label_names': [f'c{i}'.encode() for i in range(100)], b'coarse_label_names': []}, f, protocol=2)
    tr = load_dataset('cifar100', 'train', data_root=tmp_path, download=False)
    assert len(tr) == 40 and len(tr.classes) == 100 and tr.labels.max() < 100
