import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from filelock import FileLock
from probing_sota.baselines import BASELINE_FIGURES

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent/'probing-sota'
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
NO_CHROMIUM = 'needs Debian chromium (make test installs it as root)'
BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking']

# The one tiny run that every test reading a finished run shares: the pipeline as a user runs it (stages 03-12, papermill),
# on the generated shapes. Each override is as small as its readers allow:
# train.epochs=1      test_pipeline checks that the override reached training (the notebook's own default is 2)
# train.batch_size=16, train.lr=0.01: that one epoch still leaves confident (>= 0.9), low-confidence and misclassified test
#                     examples (the report's CAM claims compare them; at the defaults nearly every example is low-confidence)
# gradcam.max_images  test_pipeline: at most 6 misclassified CAMs; the report shows up to 4 cases
# gallery.max_per_set the pipeline's own gallery.html (the browser tests export theirs again, uncapped)
# baselines.*         stage 11 kept small (test_baselines runs it again on a copy, with its own budget)
# hard_examples.top_k, why.folds, robustness.*: what the report and gallery tests used when they ran the stages themselves
# The preset keeps the UMAP map off: the report test counts its figures without one.
TINY_RUN = ['--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.n_train=128', '-p', 'train.epochs=1', '-p', 'train.batch_size=16',
            '-p', 'train.lr=0.01', '-p', 'gradcam.max_images=6', '-p', 'gallery.max_per_set=12', '-p', 'baselines.n_train=300',
            '-p', 'baselines.cnn_epochs=1', '-p', 'hard_examples.top_k=20', '-p', 'why.folds=3', '-p', 'robustness.max_images=120',
            '-p', 'robustness.cam_images=16', '-p', 'robustness.max_cams=60']
# what stage 11 (baselines) writes in a run
BASELINES_OUT = ['baselines', *(f'figures/{f}' for f in BASELINE_FIGURES)]

# A stock ImageNet model probed on the 20 real photos of the foolbox wheel (test_stock_probe, test_edge_runs): its architecture,
# and the later stages on the budgets of 20 photos (small CAM and corruption passes)
STOCK_ARCH = 'timm:tf_efficientnet_lite0'
STOCK_BUDGETS = ['--preset', 'tiny', '-p', 'robustness.max_images=20', '-p', 'robustness.cam_images=8', '-p', 'robustness.max_cams=20',
                 '-p', 'gradcam.max_images=6', '-p', 'gallery.max_per_set=8']

@pytest.fixture(scope='session')
def stock(tmp_path_factory):
    "A plain timm state_dict of EfficientNet-Lite0's real ImageNet weights (1000 outputs), and the 20 photos in three layouts."
    import torch, timm
    from probing_sota.data import write_imagenet_photos
    from probing_sota.models import create_model
    d = tmp_path_factory.mktemp('stock')
    for n in ('lite0', 'lite1', 'lite2'):
        model, _ = create_model(f'efficientnet_{n}'); torch.save(model.state_dict(), d/f'{n}.pt')
    for layout in ('wnid', 'name', 'index'): write_imagenet_photos(d/layout, layout)
    info = timm.data.ImageNetInfo('imagenet-1k')
    (d/'imagenet_classes.txt').write_text('\n'.join(info.index_to_description(i).split(',')[0].strip() for i in range(1000)) + '\n')
    return d

@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    "Each test gets its own torch cache, data cache and image-folder cache, so nothing leaks between tests or from the machine."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch_home'))
    monkeypatch.setenv('PROBING_SOTA_CACHE', str(tmp_path/'image_cache'))
    monkeypatch.delenv('PROBING_SOTA_DATA', raising=False)
    monkeypatch.delenv('PROBING_SOTA_OFFLINE', raising=False)

def _files(run:Path)->dict:
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns) for p in run.rglob('*') if p.is_file()}

def _make_tiny_run(root:Path)->subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ('PROBING_SOTA_DATA', 'PROBING_SOTA_OFFLINE')}
    env.update(TORCH_HOME=str(root/'torch_home'), PROBING_SOTA_CACHE=str(root/'image_cache'))  # its own, whichever test asks first
    r = subprocess.run([str(EXE), 'run', '--runs', str(root), '--name', 'tiny', *TINY_RUN], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=1800)
    (root/'command.json').write_text(json.dumps({'args': r.args, 'returncode': r.returncode, 'stdout': r.stdout, 'stderr': r.stderr}))
    return r

@pytest.fixture(scope='session')
def tiny_pipeline(tmp_path_factory):
    """`probing-sota run --name tiny` with TINY_RUN, once per `make test`: (the run folder, the finished command).
    Under pytest-xdist the workers share it: the first to ask makes it, the others wait for it (a lock beside their folders).
    Read it, never write to it: a test that changes a run works on `copy_run(...)` of it (checked at the end of the session)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base)/'shared_tiny_run'
    with FileLock(f'{root}.lock', timeout=1800):
        if not (root/'command.json').exists():
            root.mkdir(exist_ok=True); _make_tiny_run(root)
    r = subprocess.CompletedProcess(**json.loads((root/'command.json').read_text()))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = root/'tiny'; before = _files(run)
    yield run, r
    assert _files(run) == before, 'a test wrote to the shared run: copy it with copy_run first'

@pytest.fixture(scope='session')
def tiny_run(tiny_pipeline)->Path:
    "The shared tiny run's folder (read only)."
    return tiny_pipeline[0]

def run_cli(*args, cwd:Path, timeout:int=1200)->subprocess.CompletedProcess:
    "`probing-sota ARGS` in a process of its own, from `cwd`, its output captured."
    return subprocess.run([str(EXE), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)

def in_process(*args, cwd:Path, capsys, monkeypatch)->subprocess.CompletedProcess:
    """`probing-sota ARGS` run by its entry point in this process, from `cwd`: what the command gives (code, stdout, stderr)
    without an interpreter start and its imports, for checks that refuse before any kernel starts."""
    from probing_sota.pipeline import main
    monkeypatch.chdir(cwd); capsys.readouterr()
    try: code = main([str(a) for a in args])
    except SystemExit as e: code = e.code  # argparse's own refusals
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(['probing-sota', *map(str, args)], code, out, err)

def copy_run(run:Path, dest:Path, drop=())->Path:
    "A copy of `run` at `dest` (file times kept) without the files or folders in `drop`."
    shutil.copytree(run, dest)
    for d in drop:
        p = dest/d
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    return dest

@pytest.fixture(scope='session')
def browser():
    "Headless Chromium (Debian's), launched once for every browser test."
    if not Path(CHROMIUM).exists(): pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()
