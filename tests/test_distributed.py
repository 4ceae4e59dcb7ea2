"""Scale-out as a user runs it: `probing-sota run --nproc-per-node 2` (torchrun, gloo on this CPU) against one process,
a rank killed mid-training and the rerun that resumes, one writer per run folder, and DDP on real Fashion-MNIST."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd
import psutil, pytest

ROOT = Path(__file__).parent.parent
EXE = Path(sys.executable).parent/'probing-sota'
# the generated shapes; `head` without augmentation has no batch norm in what trains, so one process and two agree to rounding
TINY = ['--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.n_train=160', '-p', 'gradcam.max_images=6', '--stages', '3-6']
EXACT = ['-p', 'train.strategy=head', '-p', 'train.augment=none', '-p', 'train.epochs=3']

def cli(*args, timeout=900, env=None):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, 'PROBING_SOTA_DIST_TIMEOUT': '120', **(env or {})})

def files(run:Path)->set:
    "The run's files, relative, without what differs by nature (timings, the pipeline's own state)."
    return {str(p.relative_to(run)) for p in run.rglob('*') if p.is_file() and p.name not in ('timings.json', 'pipeline.json')}

@pytest.fixture(scope='module')
def one_and_two(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    one = cli('run', '--runs', root, '--name', 'one', *TINY, *EXACT)
    two = cli('run', '--runs', root, '--name', 'two', *TINY, *EXACT, '--nproc-per-node', '2')
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    return root/'one', root/'two', two

def test_two_ranks_write_what_one_process_writes(one_and_two):
    one, two, out = one_and_two
    assert files(one) == files(two)  # the same layout, file for file (no rank's extra files, no notebook of rank 1)
    assert not list(two.rglob('*rank*')) and not (two/'.lock').exists()
    for f in ['predictions.csv', 'cam_metrics.csv', 'hard/misclassified.csv', 'train_log.csv']:
        assert list(pd.read_csv(one/f).columns) == list(pd.read_csv(two/f).columns), f
    cfg = json.loads((two/'notebooks/03_train.ipynb').read_text())
    assert cfg['cells'], 'the executed notebook of rank 0 is the record'

def test_two_ranks_agree_with_one_process(one_and_two):
    one, two, _ = one_and_two
    # tolerance: the head trains on the same global batches (each rank half of each), so only float rounding differs
    a, b = np.load(one/'dynamics.npz'), np.load(two/'dynamics.npz')
    assert np.abs(a['p_true'].astype(float) - b['p_true'].astype(float)).max() < 2e-3
    ma, mb = json.loads((one/'metrics.json').read_text()), json.loads((two/'metrics.json').read_text())
    assert abs(ma['accuracy'] - mb['accuracy']) <= 0.01
    pa, pb = pd.read_csv(one/'predictions.csv'), pd.read_csv(two/'predictions.csv')
    assert (pa['index'] == pb['index']).all() and np.abs(pa.confidence - pb.confidence).max() < 2e-3  # gathered in index order
    assert (np.load(two/'embeddings/train.npy').shape == np.load(one/'embeddings/train.npy').shape)
    ca, cb = pd.read_csv(one/'cam_metrics.csv'), pd.read_csv(two/'cam_metrics.csv')
    assert (ca[['index', 'set', 'target_kind']].values == cb[['index', 'set', 'target_kind']].values).all()  # one order, whatever the ranks
    assert sorted(p.name for p in (one/'gradcam_outputs').rglob('*.png')) == sorted(p.name for p in (two/'gradcam_outputs').rglob('*.png'))

def test_every_training_example_once_per_epoch(one_and_two):
    _, two, _ = one_and_two
    d = np.load(two/'dynamics.npz')
    assert d['draws'].shape == d['p_true'].shape == (3, len(d['index']))
    assert (d['draws'] == 1).all()  # every index once in every epoch: no duplicates from the shards, no gaps
    assert np.isfinite(d['p_true'].astype(float)).all()

def _kill_rank_kernel(rank:int, run:Path, after_rows:int=1, timeout:float=300):
    "SIGKILL the kernel of `rank` once train_log.csv has `after_rows` epochs (as the OOM killer would)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        log = run/'train_log.csv'
        if log.exists() and len(pd.read_csv(log)) >= after_rows:
            for p in psutil.process_iter(['cmdline']):
                try:
                    if 'ipykernel_launcher' in ' '.join(p.info['cmdline'] or []) and p.environ().get('RANK') == str(rank) and \
                       p.environ().get('WORLD_SIZE') == '2':
                        p.send_signal(signal.SIGKILL); return True
                except (psutil.NoSuchProcess, psutil.AccessDenied): pass
        time.sleep(0.2)
    return False

def test_a_killed_rank_is_named_and_the_rerun_resumes(tmp_path):
    args = ['run', '--runs', tmp_path, '--name', 'k', '--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.n_train=160',
            '-p', 'train.epochs=8', '--stages', 'train', '--nproc-per-node', '2']
    proc = subprocess.Popen([str(EXE), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, 'PROBING_SOTA_DIST_TIMEOUT': '60'})
    assert _kill_rank_kernel(1, tmp_path/'k'), 'training never got going'
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert 'rank 1' in err and 'failed' in err and 'run the same command again' in err, err[-2000:]
    assert not [p for p in psutil.process_iter(['cmdline']) if 'ipykernel_launcher' in ' '.join(p.info['cmdline'] or [])
                and str(tmp_path) in ' '.join(p.info['cmdline'] or [])], 'no kernel left behind'
    done = len(pd.read_csv(tmp_path/'k/train_log.csv'))
    assert 1 <= done < 8
    r = cli(*args)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    nb = (tmp_path/'k/notebooks/03_train.ipynb').read_text()
    assert 'resuming' in nb  # from the last finished epoch, not from scratch
    log = pd.read_csv(tmp_path/'k/train_log.csv')
    assert log.epoch.tolist() == list(range(1, 9))
    d = np.load(tmp_path/'k/dynamics.npz')
    assert d['p_true'].shape[0] == 8 and (d['draws'] == 1).all()

def test_one_writer_per_run_folder(tmp_path):
    # epochs enough to be still training when killed, however fast the machine (4 ended before the kill once)
    args = ['run', '--runs', tmp_path, '--name', 'x', '--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.epochs=200', '--stages', 'train']
    first = subprocess.Popen([str(EXE), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lock = tmp_path/'x/.lock'
    t0 = time.time()
    while not lock.exists() and time.time() - t0 < 60: time.sleep(0.1)
    holder = json.loads(lock.read_text())
    second = cli(*args)
    assert second.returncode == 2 and 'is in use by' in second.stderr and f"pid {holder['pid']}" in second.stderr, second.stderr
    assert first.poll() is None, 'the first run ended before it could be killed'
    first.kill(); first.wait()  # killed: its lock stays behind, stale
    for p in psutil.process_iter(['cmdline']):  # and its kernel with it, as when a machine goes down
        if 'ipykernel_launcher' in ' '.join(p.info['cmdline'] or []) and p.ppid() == first.pid: p.kill()
    assert lock.exists()
    third = cli(*args[:-4], '-p', 'train.epochs=1', '--force', '--stages', 'train')  # a short run in its place
    assert third.returncode == 0, third.stderr[-2000:]
    assert 'took over the lock' in third.stdout + third.stderr and not lock.exists()

def test_ddp_on_real_fashion_mnist(tmp_path):
    "Two ranks fine-tune EfficientNet-Lite0 (last_block, its batch norm in training) on a real Fashion-MNIST slice."
    script = tmp_path/'train.py'
    script.write_text("import sys, os, json\nfrom pathlib import Path\nfrom probing_sota.train import train_stage\n"
                      "s = train_stage(sys.argv[1], dataset='fashion_mnist', n_train=600, epochs=2, batch_size=64, input_size=32,"
                      " strategy='last_block', augment='default', device='cpu', exist='overwrite', progress=False)\n"
                      "(Path(sys.argv[1]).parent/f\"summary{os.environ['RANK']}.json\").write_text(json.dumps(s))\n")
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', str(script), str(tmp_path/'r')],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'OMP_NUM_THREADS': '1', 'TMPDIR': str(tmp_path)})  # torchrun's own folders stay in the test's
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [json.loads((tmp_path/f'summary{k}.json').read_text()) for k in (0, 1)]
    for s in summaries: s.pop('train_seconds')  # each rank's own clock
    assert len(summaries) == 2 and summaries[0] == summaries[1]  # every rank ends with the same gathered results
    s = summaries[0]
    assert s['n_train'] == 540 and s['best_val_acc'] > 0.5  # ten classes: chance is 0.1
    d = np.load(tmp_path/'r/dynamics.npz')
    assert (d['draws'] == 1).all() and d['p_true'].shape == (2, 540)
    import torch
    from probing_sota.models import model_from_checkpoint
    model, info = model_from_checkpoint(tmp_path/'r/model/best.pt')  # the unwrapped model, loaded by one process
    assert not any(k.startswith('module.') for k in model.state_dict())

def test_ddp_on_an_image_folder_decodes_once_per_machine(tmp_path):
    "Two ranks on a folder of PNGs with an unreadable file: one decodes into the shared cache while the other waits, both read it."
    from PIL import Image
    rng = np.random.default_rng(0)
    for k, name in enumerate(['Cat (tabby)', 'dog', 'zebra ü']):  # odd class names
        (tmp_path/'pics'/name).mkdir(parents=True)
        for i in range(14):
            img = np.clip(rng.normal(60 + 70*k, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path/'pics'/name/f'{i}.png')
    (tmp_path/'pics'/'dog'/'broken.png').write_bytes(b'not a png')
    script = tmp_path/'train.py'
    script.write_text("import sys\nfrom probing_sota.train import train_stage\n"
                      "train_stage(sys.argv[1], dataset='imagefolder', data_root=sys.argv[2], epochs=1, batch_size=8, input_size=32,"
                      " strategy='head', augment='none', weights=None, device='cpu', exist='overwrite', progress=False)\n")
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PROBING_SOTA_CACHE': str(tmp_path/'cache'), 'TMPDIR': str(tmp_path)}
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', str(script),
                        str(tmp_path/'r'), str(tmp_path/'pics')], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    caches = list((tmp_path/'cache').iterdir())
    assert len(caches) == 1 and not list(caches[0].glob('*.part*'))  # one cache, whole
    skipped = pd.read_csv(tmp_path/'r/skipped_files.csv')
    assert skipped.path.str.endswith('broken.png').tolist() == [True]
    d = np.load(tmp_path/'r/dynamics.npz')
    assert (d['draws'] == 1).all() and d['draws'].shape[1] == len(d['index'])
