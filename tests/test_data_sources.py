"CSV manifests and Hugging Face datasets as a user brings them: through the whole run, and under `probing-sota probe`."
import json, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch, torchvision
from PIL import Image
from conftest import TINY_RUN
from probing_sota.data import load_dataset, FASHION_MNIST_CLASSES

ROOT = Path(__file__).parent.parent
EXE = Path(sys.executable).parent/'probing-sota'
FAST = ['-p', 'device=cpu', '-p', 'train.epochs=1', '-p', 'gradcam.max_images=4']

def cli(*args, cwd=ROOT):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=1500, cwd=cwd)

@pytest.fixture(scope='module')
def fashion(tmp_path_factory):
    "Real Fashion-MNIST images as the two formats hold them: 240 training and 80 test images."
    d = tmp_path_factory.mktemp('sources')
    tr = load_dataset('fashion_mnist', 'train').subset(np.arange(240)); te = load_dataset('fashion_mnist', 'test').subset(np.arange(80))
    return d, tr, te

@pytest.fixture(scope='module')
def manifest(fashion):
    "A Kaggle-style CSV: its own headers, paths relative to it, a split column, a missing file and a corrupt one."
    d, tr, te = fashion; rows = []
    for split, data in [('train', tr), ('test', te)]:
        for i, (im, y) in enumerate(zip(data.images, data.labels)):
            f = d/'pics'/split/f'{i:04d}.png'; f.parent.mkdir(parents=True, exist_ok=True); Image.fromarray(im[..., 0]).save(f)
            rows.append({'image_path': f'pics/{split}/{f.name}', 'category': FASHION_MNIST_CLASSES[y], 'subset': split})
    (d/'pics'/'bad.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    rows += [{'image_path': 'pics/missing.png', 'category': 'Bag', 'subset': 'train'},
             {'image_path': 'pics/bad.png', 'category': 'Coat', 'subset': 'train'}]
    pd.DataFrame(rows).to_csv(d/'labels.csv', index=False)
    return d/'labels.csv'

@pytest.fixture(scope='module')
def hf_dir(fashion):
    "A `DatasetDict` with a `ClassLabel`, saved with save_to_disk, as the hub's fashion_mnist is."
    import datasets
    d, tr, te = fashion
    feats = datasets.Features({'image': datasets.Image(), 'label': datasets.ClassLabel(names=FASHION_MNIST_CLASSES)})
    ds = datasets.DatasetDict({s: datasets.Dataset.from_dict({'image': [Image.fromarray(im[..., 0]) for im in data.images],
                                                              'label': data.labels.tolist()}, features=feats)
                               for s, data in [('train', tr), ('test', te)]})
    ds.save_to_disk(str(d/'hf')); return d/'hf'

@pytest.fixture(scope='module')
def model_file(fashion):
    d = fashion[0]; torch.manual_seed(0); f = d/'r18.pt'
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), f); return f

def test_a_manifest_through_the_whole_run(manifest, tmp_path):
    "Every stage, 03 to the report, on a CSV manifest: the missing and the corrupt file are listed, the classes are the CSV's."
    r = cli('run', '--runs', tmp_path, '--name', 'm', *TINY_RUN, '-p', 'train.dataset=manifest', '-p', f'train.data_root={manifest}',
            '-p', 'train.n_train=None')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'m'
    skipped = pd.read_csv(run/'skipped_files.csv')
    assert sorted(Path(p).name for p in skipped.path) == ['bad.png', 'missing.png'], skipped
    assert pd.read_csv(run/'class_names.csv').name.tolist() == sorted(FASHION_MNIST_CLASSES)  # the union of the labels, sorted
    assert len(pd.read_csv(run/'predictions.csv')) == 80 and (run/'report.html').exists() and (run/'gallery.html').exists()
    assert json.loads((run/'pipeline.json').read_text())['stages']['report']['status'] == 'done'

def test_a_model_probed_on_a_hugging_face_dataset(hf_dir, model_file, tmp_path):
    "`probing-sota probe --data hf` (the stages that read its images) on the saved DatasetDict's test split, classes from its ClassLabel."
    r = cli('probe', '--weights', model_file, '--model', 'resnet18', '--data', 'hf', '--data-root', hf_dir, '--input-size', '32',
            '--runs', tmp_path, '--name', 'h', '-p', 'device=cpu', '-p', 'gradcam.max_images=4',
            '--stages', 'evaluate,hard_examples,gradcam,gallery,report')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'h'; pred = pd.read_csv(run/'predictions.csv')
    assert len(pred) == 80 and pd.read_csv(run/'class_names.csv').name.tolist() == FASHION_MNIST_CLASSES
    te = load_dataset('fashion_mnist', 'test').subset(np.arange(80))
    assert np.array_equal(pred.sort_values('index').label.values, te.labels)  # row i of the test split is Fashion-MNIST's test image i
    assert (run/'report.html').exists()

def test_hf_trained_and_manifest_probed(hf_dir, manifest, model_file, tmp_path):
    "The other two ways round: a model trained on the HF dataset, and the model file probed on the manifest."
    r = cli('run', '--runs', tmp_path, '--name', 'ht', '--preset', 'tiny', *FAST, '-p', 'train.dataset=hf', '-p', f'train.data_root={hf_dir}',
            '-p', 'train.n_train=None', '--stages', 'train,evaluate,hard_examples')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(pd.read_csv(tmp_path/'ht'/'predictions.csv')) == 80
    assert pd.read_csv(tmp_path/'ht'/'train_log.csv').epoch.tolist() == [1]
    r = cli('probe', '--weights', model_file, '--model', 'resnet18', '--data', 'manifest', '--data-root', manifest, '--input-size', '32',
            '--runs', tmp_path, '--name', 'mp', '-p', 'device=cpu', '--stages', 'evaluate,hard_examples')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(pd.read_csv(tmp_path/'mp'/'predictions.csv')) == 80  # the manifest's test split (a probe of a flat one reads it all)
    assert sorted(Path(p).name for p in pd.read_csv(tmp_path/'mp'/'skipped_files.csv').path) == ['bad.png', 'missing.png']

def test_the_other_shapes_of_both_formats(fashion, hf_dir, tmp_path, monkeypatch):
    "JSON lines with its usual names; parquet files named by split; a hub name offline, which says what to do instead."
    import datasets
    from probing_sota.core import DataNotFoundError
    from probing_sota.data import list_manifest, list_source, hf_open, _HF_OPEN
    d, tr, te = fashion
    Image.fromarray(tr.images[0][..., 0]).save(tmp_path/'a.png')
    (tmp_path/'rows.jsonl').write_text('{"image": "a.png", "class": "T-shirt/top"}\n{"image": "gone.png", "class": "Bag"}\n')
    classes, files = list_manifest(tmp_path/'rows.jsonl')
    assert classes == ['T-shirt/top'] and files.reason.tolist() == ['', 'cannot be read (no such file)']
    pq = tmp_path/'pq'/'data'; pq.mkdir(parents=True)
    for split, ds in datasets.load_from_disk(str(hf_dir)).items(): ds.to_parquet(str(pq/f'{split}-00000-of-00001.parquet'))
    classes, files = list_source(tmp_path/'pq', 'hf')
    assert classes == FASHION_MNIST_CLASSES and files.split.value_counts().to_dict() == {'train': 240, 'test': 80}
    x = load_dataset('hf', 'test', data_root=tmp_path/'pq', image_size=28, cache_dir=tmp_path/'cache', progress=False)
    assert np.array_equal(x.images[:][..., 0], te.images[..., 0]) and np.array_equal(x.labels, te.labels)
    monkeypatch.setenv('HF_DATASETS_OFFLINE', '1'); monkeypatch.setenv('HF_HUB_OFFLINE', '1'); _HF_OPEN.pop('nobody/no-such-dataset', None)
    with pytest.raises(DataNotFoundError, match='save_to_disk'): hf_open('nobody/no-such-dataset')
