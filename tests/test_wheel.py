"""An installed wheel runs the pipeline, as a user who never cloned the repository has it (`pip install .`, `pip install git+…`,
Colab): the build ships the stage notebooks inside the package, byte for byte nbs/, and `probing-sota run` works from any folder."""
import json, os, re, shutil, subprocess, sys, sysconfig, zipfile
from pathlib import Path
from probing_sota.pipeline import STAGES, stage_notebooks

ROOT = Path(__file__).parent.parent
# the tiny preset with every stage cut to a few seconds (80 test images, no planted checks, two corruptions): this test asks
# that the installed package runs its stage notebooks, not what the stages find (the shared tiny run's tests do). It runs the
# first, the second and the last stage: every shipped notebook is checked byte for byte against nbs/, and they are found
# and started one way, so the other six would run as these do (the shared tiny run runs all nine from the clone)
WHEEL_STAGES = ['train', 'evaluate', 'report']
TINY = ['--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.n_train=128', '-p', 'train.epochs=1', '-p', 'evaluate.n_test=80',
        '-p', 'hard_examples.top_k=20', '-p', 'gradcam.max_images=6', '-p', 'why.folds=3', '-p', 'why.checks=False',
        '-p', 'why.train_issues=False', '-p', 'why.n_slices=3', '-p', 'robustness.corruptions=blur,noise', '-p', 'robustness.max_images=120',
        '-p', 'robustness.cam_images=16', '-p', 'robustness.max_cams=60', '-p', 'gallery.max_per_set=12', '-p', 'baselines.n_train=300',
        '-p', 'baselines.cnn_epochs=1']
BUILD_SOURCES = {'setup.py', 'pyproject.toml', 'settings.ini', 'README.md', 'MANIFEST.in', 'LICENSE', 'probing_sota', 'nbs'}
STAMP = '+wheeltest'  # a local version: the run's config.json then says which installation the stage kernels imported

def _sources(d, names):
    "copytree's ignore: at the top, all but what a build reads; below, caches."
    return [n for n in names if (Path(d) == ROOT and n not in BUILD_SOURCES) or
            n in ('__pycache__', '.ipynb_checkpoints', '_proc', '_docs')]

def build_wheel(tmp:Path)->Path:
    "The wheel of this working tree (a copy, so that the build writes nothing here), its version stamped."
    src = tmp/'src'; shutil.copytree(ROOT, src, ignore=_sources)
    ini = src/'settings.ini'; ini.write_text(re.sub(r'^(version\s*=\s*\S+)\s*$', rf'\g<1>{STAMP}', ini.read_text(), count=1, flags=re.M))
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-q', '-w', tmp/'dist', src],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list((tmp/'dist').glob('probing_sota-*.whl')); assert len(wheels) == 1, wheels
    return wheels[0]

def fresh_venv(path:Path, wheel:Path)->Path:
    """A new virtual environment with the wheel installed in it. Its dependencies (torch, …) are this environment's, seen through a
    .pth line: a folder a .pth names joins sys.path, but the .pth files in it are not read, so the editable install of this clone
    (a finder hook in one) does not follow."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', path], check=True, timeout=300)
    py = path/'bin'/'python'
    r = subprocess.run([sys.executable, '-m', 'pip', '--python', py, 'install', '--no-deps', '--no-index', '-q', wheel],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    site = Path(subprocess.run([py, '-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ('purelib', 'platlib'))
    (site/'_project_deps.pth').write_text(''.join(f'{p}\n' for p in deps))
    return site

def other_python3_kernel(d:Path)->Path:
    "A Jupyter path whose 'python3' kernel.json starts this environment's Python, as a kernel another environment installed would."
    k = d/'kernels'/'python3'; k.mkdir(parents=True)
    (k/'kernel.json').write_text(json.dumps({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                             'display_name': 'Python 3 (another environment)', 'language': 'python'}))
    return d

def tree(d:Path)->dict: return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob('*'))}

def test_installed_wheel_runs_the_pipeline(tmp_path):
    wheel = build_wheel(tmp_path)
    # the wheel holds the stage notebooks, each byte for byte the repository's
    expected = {f'probing_sota/nbs/{Path(f).name}': Path(f).read_bytes() for f in stage_notebooks(ROOT/'nbs').dropna().notebook}
    assert len(expected) == len(STAGES)
    with zipfile.ZipFile(wheel) as z:
        shipped = {n: z.read(n) for n in z.namelist() if n.startswith('probing_sota/nbs/')}
    assert shipped.keys() == expected.keys() and all(shipped[n] == expected[n] for n in expected), sorted(shipped)
    # installed in a new environment, used from a folder that is no clone: the wheel's package, not this clone's
    site = fresh_venv(tmp_path/'venv', wheel); venv_bin = tmp_path/'venv'/'bin'
    user = tmp_path/'user'; user.mkdir()
    where = subprocess.run([venv_bin/'python', '-c', 'import probing_sota; print(probing_sota.__file__)'], cwd=user, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where
    nbs = subprocess.run([venv_bin/'python', '-c', 'from probing_sota.pipeline import find_nbs; print(find_nbs())'], cwd=user,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(nbs) == site/'probing_sota'/'nbs', nbs  # no clone here: the notebooks shipped in the package
    installed = tree(site/'probing_sota')
    # the user's folder is a git repository of their own (venv and all): that commit is not the package's
    (tmp_path/'README.md').write_text('my project\n')
    for a in [['init', '-q'], ['add', 'README.md'], ['-c', 'user.name=u', '-c', 'user.email=u@x', 'commit', '-qm', 'mine']]:
        subprocess.run(['git', *a], cwd=tmp_path, check=True, capture_output=True)
    env = {**os.environ, 'JUPYTER_PATH': str(other_python3_kernel(tmp_path/'jupyter'))}
    r = subprocess.run([venv_bin/'probing-sota', 'run', *TINY, '--stages', ','.join(WHEEL_STAGES)], cwd=user, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = user/'runs'/'tiny'
    st = json.loads((run/'pipeline.json').read_text())['stages']
    assert list(st) == WHEEL_STAGES and all(s['status'] == 'done' for s in st.values()), st
    ran = stage_notebooks(site/'probing_sota'/'nbs').set_index('name').loc[WHEEL_STAGES].notebook
    for f in ['report.html', 'metrics.json', 'model/best.pt', *(f'notebooks/{Path(n).name}' for n in ran)]:
        assert (run/f).exists(), f
    assert str(run/'report.html') in r.stdout
    # the stage kernels ran this environment's Python and imported the wheel (the other 'python3' kernel.json was not taken)
    cfg = json.loads((run/'config.json').read_text())
    assert cfg['versions']['probing_sota'].endswith(STAMP), cfg['versions']
    assert cfg['git_commit'] is None, cfg['git_commit']  # a wheel has no commit, whichever repository holds the venv
    # the run wrote into the user's folder only: nothing in the installed package, nothing else beside runs/
    assert tree(site/'probing_sota') == installed
    assert sorted(os.listdir(user)) == ['runs']
