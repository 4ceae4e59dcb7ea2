"The pipeline as a user drives it: `probing-sota run` and `sweep` through papermill, with parameters, resuming and refusing."
import json, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
from conftest import TINY_RUN, copy_run, in_process

ROOT = Path(__file__).parent.parent
EXE = Path(sys.executable).parent/'probing-sota'
TINY = ['--preset', 'tiny', '-p', 'device=cpu', '-p', 'train.n_train=128', '-p', 'gradcam.max_images=6', '-p', 'gallery.max_per_set=12']

def cli(*args, cwd=ROOT):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=1200, cwd=cwd)

def state(run): return json.loads((run/'pipeline.json').read_text())

def test_run_override_skip_and_rerun_of_changed_stages(tiny_pipeline, tmp_path):
    "The shared tiny run (conftest's TINY_RUN, with train.epochs=1) as its command printed it; then a copy of it run again."
    shared, r = tiny_pipeline
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    st = state(shared)['stages']
    assert all(s['status'] == 'done' for s in st.values()) and {'train', 'evaluate', 'hard_examples', 'gradcam'} <= set(st)
    # the override reached the stage: recorded, injected into the executed notebook, and obeyed
    assert json.loads((shared/'config.json').read_text())['params']['epochs'] == 1
    assert len(pd.read_csv(shared/'train_log.csv')) == 1  # the notebook's own default is 2 epochs
    assert 'epochs = 1' in (shared/'notebooks/03_train.ipynb').read_text()
    assert json.loads((shared/'cam_summary.json').read_text())['counts']['misclassified'] <= 6
    for f in ['model/best.pt', 'predictions.csv', 'metrics.json', 'hard/hard_examples.csv', 'cam_metrics.csv', 'gallery.html']:
        assert (shared/f).exists(), f
    assert 'stage 03 train] done in' in r.stdout and 'elapsed' in r.stdout and str(shared/'gallery.html') in r.stdout
    # the terminal is what a person wants to read: stage lines, where the time went, the headline; no library noise
    assert not r.stderr.strip(), r.stderr
    assert 'where the time went' in r.stdout and 'test accuracy ' in r.stdout and 'kernel start' in r.stdout, r.stdout
    assert {'kernel start', 'imports and setup', 'training epochs'} <= set(st['train']['breakdown']), st['train']
    # the same command again (on a copy, file times kept): everything skipped, nothing rewritten
    run = copy_run(shared, tmp_path/'tiny')
    mtime = (run/'model/best.pt').stat().st_mtime
    r = cli('run', '--runs', tmp_path, '--name', 'tiny', *TINY_RUN)
    assert r.returncode == 0 and r.stdout.count('skipped') >= 4, r.stdout
    assert (run/'model/best.pt').stat().st_mtime == mtime
    # a later stage's parameter changed: that stage and the ones after it run again, the ones before it do not
    r = cli('run', '--runs', tmp_path, '--name', 'tiny', *TINY_RUN, '-p', 'gallery.max_per_set=10')
    assert r.returncode == 0, r.stderr
    assert '[1/' in r.stdout and 'gradcam] done before, skipped' in r.stdout and 'gallery] done in' in r.stdout, r.stdout
    assert 'report] done in' in r.stdout and state(run)['params']['gallery']['max_per_set'] == 10
    assert (run/'model/best.pt').stat().st_mtime == mtime
    # a training parameter changed: refused, nothing touched; --force starts over
    r = cli('run', '--runs', tmp_path, '--name', 'tiny', *TINY_RUN, '-p', 'train.epochs=2')
    assert r.returncode == 2 and 'epochs 1 → 2' in r.stderr and '--force' in r.stderr
    assert (run/'model/best.pt').stat().st_mtime == mtime
    r = cli('run', '--runs', tmp_path, '--name', 'tiny', *TINY_RUN, '-p', 'train.epochs=2', '--stages', 'train,evaluate', '--force')
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(run/'train_log.csv')) == 2 and not (run/'gallery.html').exists()

def test_failing_stage_is_named_and_the_run_resumes(tmp_path):
    # evaluating the 4-class shapes model on Fashion-MNIST passes every check up front and fails inside stage 04
    run = tmp_path/'broken'
    r = cli('run', '--runs', tmp_path, '--name', 'broken', *TINY, '-p', 'train.epochs=1', '-p', 'evaluate.dataset=fashion_mnist',
            '--stages', '3-5')
    assert r.returncode == 2
    assert 'Stage 04 (evaluate) failed in cell' in r.stderr and '10 classes' in r.stderr
    assert str(run/'notebooks/04_evaluate.ipynb') in r.stderr and 'resumes at stage 04' in r.stderr
    st = state(run)['stages']
    assert [st[s]['status'] for s in ['train', 'evaluate']] == ['done', 'failed'] and 'hard_examples' not in st
    assert st['evaluate']['cell'] is not None and 'fashion_mnist' in st['evaluate']['error']
    assert (run/'notebooks/04_evaluate.ipynb').exists() and (run/'model/best.pt').exists() and not (run/'predictions.csv').exists()
    mtime = (run/'model/best.pt').stat().st_mtime
    r = cli('run', '--runs', tmp_path, '--name', 'broken', *TINY, '-p', 'train.epochs=1', '--stages', '3-5')
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('done before, skipped') == 1 and 'stage 04 evaluate] done in' in r.stdout
    assert state(run)['stages']['hard_examples']['status'] == 'done' and (run/'hard/hard_examples.csv').exists()
    assert (run/'model/best.pt').stat().st_mtime == mtime  # the model was not trained again

def test_sweep_writes_the_comparison(tmp_path):
    "A sweep of two points: two runs and their comparison; tracked, the sweep is a group (MLflow's parent run, W&B's group)."
    r = cli('sweep', '--runs', tmp_path, '--name', 'sw', *TINY, '-p', 'train.epochs=1', '--grid', 'train.strategy=head,last_block',
            '--stages', 'train,evaluate', '--track', 'mlflow,wandb')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    from mlflow.tracking import MlflowClient
    from probing_sota.track import mlflow_uri, wandb_offline_records
    c = MlflowClient(mlflow_uri(tmp_path)); runs = c.search_runs([c.get_experiment_by_name('probing_sota').experiment_id])
    parent = next(x for x in runs if x.info.run_name == 'sw'); kids = [x for x in runs if x is not parent]
    assert sorted(x.info.run_name for x in kids) == ['strategy=head', 'strategy=last_block']
    assert {x.data.tags.get('mlflow.parentRunId') for x in kids} == {parent.info.run_id}
    assert 'tables/comparison.csv' in {a.path for a in c.list_artifacts(parent.info.run_id, 'tables')}
    groups = {next(x for x in wandb_offline_records(tmp_path/'sw'/lab) if x['type'] == 'run')['run'].get('run_group')
              for lab in ['strategy=head', 'strategy=last_block']}
    assert groups == {'sw'}
    df = pd.read_csv(tmp_path/'sw/comparison.csv')
    assert list(df.label) == ['strategy=head', 'strategy=last_block'] and (df.status == 'done').all()
    for lab in df.label:  # each number is the run's own
        m = json.loads((tmp_path/'sw'/lab/'metrics.json').read_text())
        assert df.set_index('label').loc[lab, 'test_acc'] == pytest.approx(m['accuracy'])
    assert df.trainable_params.iloc[0] < df.trainable_params.iloc[1]  # head trains fewer parameters than last_block
    assert (tmp_path/'sw/figures/comparison.png').stat().st_size > 10_000 and 'strategy=head' in (tmp_path/'sw/comparison.md').read_text()

def test_remedies_trains_each_remedy_and_compares_it_with_the_base(tmp_path):
    r = cli('remedies', '--runs', tmp_path, '--name', 'rm', *TINY, '-p', 'train.epochs=2', '--remedies', 'mining',
            '--stages', 'train,evaluate,hard_examples')  # 06 and 08 too by default; 08's notebook tests the corrupted comparison
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    root = tmp_path/'rm'; df = pd.read_csv(root/'remedies.csv')
    assert df.remedy.tolist() == ['base', 'mining']
    cfg = json.loads((root/'mining/config.json').read_text())['params']
    assert cfg['mine_from'] == str(root/'base') and cfg['mine_set'] == 'hard-to-learn'
    summary = state(root/'mining')
    assert [k for k, v in summary['stages'].items() if v['status'] == 'done'] == ['train', 'evaluate', 'hard_examples']
    for run in ['base', 'mining']:  # each number is the run's own
        m = json.loads((root/run/'metrics.json').read_text())
        assert df.set_index('remedy').loc[run, 'test_acc'] == pytest.approx(m['accuracy'], abs=1e-4)
    flips = pd.read_csv(root/'flips.csv'); a, b = (pd.read_csv(root/x/'predictions.csv') for x in ['base', 'mining'])
    assert flips.iloc[-1].fixed == ((a.pred != a.label) & (b.pred == b.label)).sum()
    assert '**mining** (' in (root/'base/report.md').read_text() and (root/'base/remedies/remedies.png').exists()
    r2 = cli('remedies', '--runs', tmp_path, '--name', 'rm2', *TINY, '--remedies', 'mining,bagging')
    assert r2.returncode == 2 and "Unknown remedy 'bagging'" in r2.stderr and not (tmp_path/'rm2').exists()
    r3 = cli('remedies', '--runs', tmp_path, '--name', 'rm3', *TINY, '--stages', 'train,evaluate')
    assert r3.returncode == 2 and 'leaves out hard_examples' in r3.stderr and not (tmp_path/'rm3').exists()

@pytest.mark.parametrize('args, message', [
    (['--preset', 'quikstart'], "Unknown preset 'quikstart'"),
    (['-p', 'train.epoch=3'], "Did you mean 'train.epochs'"),
    (['-p', 'train.epochs=2.5'], 'train.epochs takes int'),
    (['-p', 'train.lr=fast'], 'train.lr takes float'),
    (['-p', 'epochs'], 'key=value'),
    (['-p', 'train.strategy=frozen'], "Unknown strategy 'frozen'"),
    (['-p', 'run_dir=/tmp/x'], '--name'),
    (['--stages', 'train,trian'], "missing stage(s) trian"),
])
def test_bad_parameters_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch, args, message):
    r = in_process('run', '--runs', tmp_path, '--name', 'x', *args, cwd=ROOT, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path/'x').exists()  # nothing was written

def test_bad_config_files_and_folders(tmp_path, capsys, monkeypatch):
    def command(*args): return in_process(*args, cwd=ROOT, capsys=capsys, monkeypatch=monkeypatch)
    bad = tmp_path/'bad.yaml'; bad.write_text("train:\n  epochs: 3\n lr: 1e-3\n")
    r = command('run', '--runs', tmp_path, '--config', bad)
    assert r.returncode == 2 and 'not valid YAML (line 3' in r.stderr
    good = tmp_path/'good.yaml'; good.write_text("train:\n  epochs: 3\n  lr: 1e-3\ndevice: cpu\n")
    r = command('run', '--runs', tmp_path, '--config', good, '-p', 'train.epochs=4', '--dry-run')
    p = json.loads(r.stdout)
    assert r.returncode == 0 and p['train']['epochs'] == 4 and p['train']['lr'] == 1e-3 and p['gradcam']['device'] == 'cpu'
    other = tmp_path/'other'; other.mkdir(); (other/'config.json').write_text('{"params": {}}')
    r = command('run', '--runs', tmp_path, '--name', 'other', '--preset', 'tiny')
    assert r.returncode == 2 and 'made outside the pipeline' in r.stderr and (other/'config.json').exists()
    notes = tmp_path/'notes'; notes.mkdir(); (notes/'thesis.tex').write_text('keep me')
    for extra in [[], ['--force']]:
        r = command('run', '--runs', tmp_path, '--name', 'notes', '--preset', 'tiny', *extra)
        assert r.returncode == 2 and 'thesis.tex' in r.stderr and (notes/'thesis.tex').read_text() == 'keep me'
    (tmp_path/'afile').write_text('x')
    r = command('run', '--runs', tmp_path, '--name', 'afile', '--preset', 'tiny')
    assert r.returncode == 2 and 'is a file' in r.stderr
