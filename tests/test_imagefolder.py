"""Image folders as people have them: every kind of bad file, each layout (split here, train/+val/, train/+test/),
classes missing from one side; the whole probe through the command line, and the error mode."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch, torchvision
from PIL import Image
from probing_sota.data import load_dataset, plant_bad_files, image_cache_dir
from probing_sota.pipeline import main
from probing_sota.core import run_params

FMNIST = Path('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
needs_fmnist = pytest.mark.skipif(not FMNIST.exists(), reason='Debian package dataset-fashion-mnist not installed (make test installs it as root)')
NBS = Path(__file__).resolve().parent.parent/'nbs'
EXE = Path(sys.executable).parent/'probing-sota'

def write_classes(base:Path, classes:dict, per_class:int, offset:int=0):
    "Real Fashion-MNIST images as base/<class>/*.jpg|png, grey and RGB, for {folder name: Fashion-MNIST label}."
    fm = load_dataset('fashion_mnist', 'test')
    for name, c in classes.items():
        d = base/name; d.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(fm.labels == c)[offset:offset + per_class]):
            im = Image.fromarray(fm.images[i][..., 0]).resize((40 + 8*(j % 3), 40))  # mixed sizes
            (im.convert('RGB') if j % 2 else im).save(d/f'img {j}.{"jpg" if j % 3 == 0 else "png"}')

def plant(folder:Path)->pd.DataFrame:
    photo = np.asarray(Image.fromarray(load_dataset('fashion_mnist', 'test').images[0][..., 0]).convert('RGB'))
    return plant_bad_files(folder, photo)

def cli(*args, cwd:Path):
    return subprocess.run([str(EXE), *args, '--nbs', str(NBS)], cwd=cwd, capture_output=True, text=True, timeout=900)

def skipped_as_planted(run:Path, planted:pd.DataFrame, extra:set=frozenset()):
    "skipped_files.csv lists exactly the planted files that are not readable images (and `extra`), each with a reason."
    sk = pd.read_csv(run/'skipped_files.csv', keep_default_na=False)
    assert set(sk.path) == set(planted.path[planted.kind != 'readable']) | set(extra), sk.to_string()
    assert (sk.reason.str.len() > 5).all()
    return sk

def test_every_file_accounted_for_in_split_folders_with_stray_files(tmp_path):
    "train/ + test/, a val/ that is not used, files outside the splits and outside class folders: each has its reason."
    root = tmp_path/'data'
    write_classes(root/'train', {'cat': 0, 'dog': 1}, 6); write_classes(root/'test', {'cat': 0, 'dog': 1}, 3, offset=50)
    write_classes(root/'val', {'cat': 0}, 2, offset=80); write_classes(root/'extras', {'misc': 2}, 1)
    (root/'train'/'loose.png').write_bytes((root/'train'/'cat'/'img 1.png').read_bytes())
    planted = plant(root/'test'/'dog')
    te = load_dataset('imagefolder', 'test', data_root=root, image_size=32, progress=False)
    reasons = {Path(p).relative_to(root).as_posix(): r for p, r in te.skipped.values}
    assert reasons['val/cat/img 0.jpg'].startswith('in val/, not used: test/')
    assert reasons['extras/misc/img 0.jpg'].startswith('outside the split folders train/ and test/')
    assert reasons['train/loose.png'] == 'not inside a class folder'
    assert set(te.skipped.path) == set(planted.path[planted.kind != 'readable']) | {str(root/p) for p in
           ['val/cat/img 0.jpg', 'val/cat/img 1.png', 'extras/misc/img 0.jpg', 'train/loose.png']}
    assert len(te) == 6 + (planted.kind == 'readable').sum() and te.classes == ['cat', 'dog']

@needs_fmnist
def test_cli_run_on_split_folders_with_bad_files_and_missing_classes(tmp_path):
    """train/ + val/, a class only in train/ (no test images) and one only in val/ (no training images), every kind of
    bad file on both sides: the whole run finishes, skipped_files.csv lists exactly the bad files, metrics count the rest."""
    root = tmp_path/'photos'
    write_classes(root/'train', {'T-shirt top': 0, 'Trouser': 1, 'Ankle boot é': 9}, 12)
    write_classes(root/'val', {'T-shirt top': 0, 'Ankle boot é': 9, 'Bag': 8}, 6, offset=100)
    planted = pd.concat([plant(root/'train'/'Trouser'), plant(root/'val'/'Ankle boot é')], ignore_index=True)
    r = cli('run', '--preset', 'tiny', '--name', 'messy', '-p', 'train.dataset=imagefolder', '-p', f'train.data_root={root}',
            '-p', 'train.input_size=32', '-p', 'train.epochs=1', '-p', 'gradcam.max_images=4', '-p', 'device=cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'running over TCP' not in r.stderr  # the stages' kernels talk over IPC sockets (#15)
    run = tmp_path/'runs'/'messy'
    skipped_as_planted(run, planted)
    n_test = 3*6 + (planted.path.str.contains('/val/') & (planted.kind == 'readable')).sum()
    m = json.loads((run/'metrics.json').read_text()); assert m['n'] == n_test
    assert pd.read_csv(run/'class_names.csv').name.tolist() == ['Ankle boot é', 'Bag', 'T-shirt top', 'Trouser']
    pc = pd.read_csv(run/'per_class.csv').set_index('class'); assert pc.loc['Trouser', 'support'] == 0
    assert 'Bag' in torch.load(run/'model'/'best.pt', weights_only=False)['meta']['summary']['classes_without_training_images']
    md = (run/'report.md').read_text()
    assert (run/'report.html').exists() and (run/'gallery.html').exists() and 'Trouser' in md
    assert f"{len(planted) - (planted.kind == 'readable').sum()} files under the data root were not read as images" in md
    caches = [d for d in image_cache_dir().iterdir() if d.is_dir()]
    assert len(caches) == 1, caches  # one decode at the model's size, read by every stage (the baselines resize it)
    assert 'decoded before' in (run/'notebooks'/'04_evaluate.ipynb').read_text()
    n_tr = 3*12 + (planted.path.str.contains('/train/') & (planted.kind == 'readable')).sum(); n_va = round(0.2*n_tr)
    assert f'| training images | {n_tr - n_va} (+ {n_va} held out for validation) |' in md  # what training used, not the n_train cap
    args = ['run', '--preset', 'tiny', '--name', 'messy', '-p', 'train.dataset=imagefolder', '-p', f'train.data_root={root}',
            '-p', 'train.input_size=32', '-p', 'train.epochs=1', '-p', 'gradcam.max_images=4', '-p', 'device=cpu', '--stages', 'report']
    assert 'done before, skipped' in cli(*args, cwd=tmp_path).stdout
    (root/'val'/'Bag'/'img 0.jpg').unlink()  # the data changes: finished stages must not be reused silently
    r = cli(*args, cwd=tmp_path); assert r.returncode == 0 and 'the image folder changed' in r.stdout, r.stdout[-2000:]

@needs_fmnist
def test_cli_probe_reads_a_flat_folder_as_test_images(tmp_path):
    """One tree of class folders with bad files, probed: a probe has no training, so every readable image is a test image (the
    lone image of a class too); 07 skips the neighbours, 09 says what it cannot diagnose without them, and 11 says why there are
    no baselines; the report says what ran."""
    root = tmp_path/'flat'
    write_classes(root, {'shirt': 6, 'sneaker': 7, 'sandal': 5}, 15); write_classes(root, {'lonely': 8}, 1)  # a class of one image
    planted = plant(root/'sneaker')
    torch.manual_seed(0); f = tmp_path/'r18.pt'; torch.save(torchvision.models.resnet18(num_classes=4).state_dict(), f)
    r = cli('probe', '--model', 'resnet18', '--weights', str(f), '--data', 'imagefolder', '--data-root', str(root), '--input-size', '32',
            '--crop-pct', '1', '--preset', 'tiny', '-p', 'gradcam.max_images=4', '-p', 'device=cpu',
            '--stages', 'evaluate,hard_examples,why,diagnosis,baselines,report', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'probe-r18'
    skipped_as_planted(run, planted)
    n_readable = 46 + (planted.kind == 'readable').sum()
    assert json.loads((run/'metrics.json').read_text())['n'] == n_readable and run_params(run)['probe']
    pc = pd.read_csv(run/'per_class.csv').set_index('class')
    assert pc.loc['lonely', 'support'] == 1 and pc.support.sum() == n_readable, pc
    st = json.loads((run/'pipeline.json').read_text())['stages']
    assert list(st) == ['evaluate', 'hard_examples', 'why', 'diagnosis', 'baselines', 'report'] and all(v['status'] == 'done' for v in st.values())
    ds = json.loads((run/'hard'/'diagnosis_summary.json').read_text())  # no training split: it says what it cannot diagnose
    assert set(ds['cannot_diagnose']) == {'out_of_distribution', 'label_error', 'similar_class'} and ds['diagnosed'] >= 1
    assert 'out_of_distribution' not in set(pd.read_csv(run/'hard'/'diagnosis.csv').diagnosis)
    assert 'note: no baselines' in (run/'notebooks'/'11_baselines.ipynb').read_text()
    assert (run/'report.html').exists() and 'image cache' in (run/'notebooks'/'04_evaluate.ipynb').read_text()

@needs_fmnist
@pytest.mark.parametrize('cmd', ['run', 'probe'])
def test_error_mode_lists_every_bad_file_before_any_stage(tmp_path, capsys, cmd):
    "--on-bad-image error: one failure, naming every unreadable file (and no hidden or non-image file), nothing written."
    root = tmp_path/'flat'; write_classes(root, {'a': 0, 'b': 1}, 6)
    planted = pd.concat([plant(root/'a'), plant(root/'b')], ignore_index=True)
    if cmd == 'run':
        args = ['run', '--preset', 'tiny', '-p', 'train.dataset=imagefolder', '-p', f'train.data_root={root}']
    else:
        f = tmp_path/'r18.pt'; torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), f)
        args = ['probe', '--model', 'resnet18', '--weights', str(f), '--data', 'imagefolder', '--data-root', str(root), '--input-size', '32']
    assert main(args + ['--on-bad-image', 'error', '--runs', str(tmp_path/'runs'), '--nbs', str(NBS)]) == 2
    err = capsys.readouterr().err
    assert err.count('\n  ') == (planted.kind == 'unreadable').sum() == 12, err
    for p in planted.path[planted.kind == 'unreadable']: assert f'{Path(p).relative_to(root)}:' in err
    assert '.DS_Store' not in err and 'notes.txt' not in err and not (tmp_path/'runs').exists()
