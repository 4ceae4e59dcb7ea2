"Trackers as a user meets them: `--track` on the command line and in a config file, each tracker read back with its own reader."
import json, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
from conftest import in_process

ROOT = Path(__file__).parent.parent
EXE = Path(sys.executable).parent/'probing-sota'
TINY = ['--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.n_train=128', '-p', 'train.epochs=2', '-p', 'gradcam.max_images=4']

def cli(*args, cwd=ROOT, env=None):
    import os
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=1200, cwd=cwd,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items() if k != 'WANDB_API_KEY'})

def test_a_run_tracked_by_every_tracker(tmp_path):
    "One run, three trackers: parameters, live curves (one validation point per epoch), stage seconds, numbers, hard examples."
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from probing_sota.track import mlflow_uri, wandb_offline_records, wandb_history, hard_table
    r = cli('run', '--runs', tmp_path, '--name', 'tracked', *TINY, '--stages', '3-6', '--track', 'wandb,mlflow,tensorboard')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'tracked'; out = r.stdout + r.stderr
    assert 'wandb sync' in out and 'MLflow run' in out and 'tensorboard --logdir' in out, out[-2000:]
    metrics = json.loads((run/'metrics.json').read_text()); n_cams = sum(p is not None for p in hard_table(run)[1]['cam'])
    # MLflow: the local store beside the runs
    c = MlflowClient(mlflow_uri(tmp_path)); ml, = c.search_runs([c.get_experiment_by_name('probing_sota').experiment_id])
    assert ml.info.run_name == 'tracked' and ml.info.status == 'FINISHED'
    assert [m.step for m in c.get_metric_history(ml.info.run_id, 'train/val_acc')] == [1, 2]
    assert ml.data.metrics['test/accuracy'] == pytest.approx(metrics['accuracy'])
    assert {'seconds/train', 'seconds/evaluate', 'seconds/hard_examples', 'seconds/gradcam'} <= set(ml.data.metrics)
    assert ml.data.params['train.epochs'] == '2' and {'env.torch', 'env.device'} <= set(ml.data.params)
    assert 'tables/hard_examples.csv' in {a.path for a in c.list_artifacts(ml.info.run_id, 'tables')}
    assert len(c.list_artifacts(ml.info.run_id, 'hard_examples/cam')) == n_cams > 0
    # TensorBoard: event files in the run folder
    ea = EventAccumulator(str(run/'tensorboard'), size_guidance={'images': 0}); ea.Reload()
    assert [s.step for s in ea.Scalars('train/val_acc')] == [1, 2] and len(ea.Images('hard_examples/cam')) == n_cams
    # W&B: the offline run file, read by W&B's own reader
    recs = wandb_offline_records(run); hist = wandb_history(recs)
    assert hist.dropna(subset=['train/val_acc'])['_step'].tolist() == [1, 2]
    assert int(hist.filter(like='hard_examples.').dropna().iloc[-1]['hard_examples.nrows']) == len(hard_table(run)[0])
    summary = {k: v for r in recs if r.get('type') == 'summary' for k, v in r['summary']['update'].items()}
    assert summary['test/accuracy'] == pytest.approx(metrics['accuracy']) and summary['seconds/gradcam'] > 0

def test_a_tracker_that_fails_mid_run_leaves_the_run_complete(tmp_path, monkeypatch, capsys):
    "`track:` in a YAML config; MLflow's server goes away after the first epoch: said once, the run finishes, TensorBoard goes on."
    from probing_sota import track
    calls = []
    def gone(self, values, step=None):
        calls.append(step)
        if len(calls) > 1: raise ConnectionError('MLflow server at http://tracking:5000 is gone')
    monkeypatch.setattr(track.MlflowTracker, 'metrics', gone)
    (tmp_path/'cfg.yaml').write_text('track: mlflow,tensorboard\ntrain:\n  epochs: 2\n')
    r = in_process('run', '--runs', tmp_path/'runs', '--name', 'flaky', '--config', tmp_path/'cfg.yaml', *TINY[:-4], '--stages', '3-4',
                   cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    st = json.loads((tmp_path/'runs/flaky/pipeline.json').read_text())['stages']
    assert {k: v['status'] for k, v in st.items()} == {'train': 'done', 'evaluate': 'done'}
    assert r.stdout.count('tracker mlflow failed') == 1 and 'is gone' in r.stdout, r.stdout[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(tmp_path/'runs/flaky/tensorboard')); ea.Reload()
    assert 'test/accuracy' in ea.Tags()['scalars'] and len(ea.Scalars('train/val_acc')) == 2

def test_a_tracker_that_is_not_installed_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    from probing_sota import track
    monkeypatch.setitem(track.TRACKERS, 'wandb', 'wandb_is_not_installed_here')
    r = in_process('run', '--runs', tmp_path, '--name', 'x', *TINY, '--track', 'tensorboard,wandb', cwd=tmp_path, capsys=capsys,
                   monkeypatch=monkeypatch)
    assert r.returncode == 2 and "pip install 'probing_sota[track]'" in r.stderr and not (tmp_path/'x').exists(), r.stderr
    r = in_process('run', '--runs', tmp_path, '--name', 'x', *TINY, '--track', 'neptune', cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 2 and 'wandb' in r.stderr and not (tmp_path/'x').exists(), r.stderr

def test_curves_logged_once_while_the_thread_and_the_pipeline_both_look(tmp_path):
    "The curve thread polls `train_log.csv` while the pipeline logs its last rows as stage 03 ends: each epoch once."
    import time
    from probing_sota import track
    class Recorder(track.Tracker):
        name = 'recorder'
        def __init__(self, *a): self.steps = []
        def params(self, p): pass
        def metrics(self, values, step=None):
            if step is not None: time.sleep(0.001); self.steps.append(step)  # slow enough for the two to overlap
        def table(self, *a, **kw): pass
        def files(self, *a, **kw): pass
        def finish(self, ok=True): pass
    track.TRACKER_CLASSES['recorder'] = Recorder
    try:
        for i in range(40):
            run = tmp_path/f'run{i}'; run.mkdir()
            rt = track.RunTracking(['recorder'], run, log=lambda *a: None, poll=0.0005); rt.stage_started('train')
            pd.DataFrame({'epoch': [1, 2], 'val_acc': [0.5, 0.6]}).to_csv(run/'train_log.csv', index=False)
            rt.stage_finished('train', 1.0)
            assert rt.trackers[0].steps == [1, 2], f"try {i}: {rt.trackers[0].steps}"
    finally: del track.TRACKER_CLASSES['recorder']
