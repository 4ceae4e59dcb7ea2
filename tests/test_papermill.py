"The stage notebooks run headless under papermill, with parameters, writing into the run directory."
import json
from pathlib import Path
import pandas as pd
from probing_sota.pipeline import run_stages, find_nbs

def test_stages_run_under_papermill(tmp_path):
    run = tmp_path/'runs'/'tiny'
    params = {'train': dict(dataset='synthetic', epochs=2, n_train=128, input_size=32, batch_size=32, exist='overwrite'),
              'gradcam': dict(max_images=8)}
    done = run_stages(run, find_nbs(Path(__file__).parent.parent), params)
    assert [d['name'] for d in done][:4] == ['train', 'evaluate', 'hard_examples', 'gradcam']
    for f in ['config.json', 'model/best.pt', 'train_log.csv', 'dynamics.npz', 'predictions.csv', 'metrics.json',
              'hard/hard_examples.csv', 'cam_metrics.csv', 'cam_summary.json', 'notebooks/03_train.ipynb']:
        assert (run/f).exists(), f
    assert json.loads((run/'config.json').read_text())['params']['n_train'] == 128  # the parameters reached the stage
    assert len(pd.read_csv(run/'train_log.csv')) == 2
    assert '"n_train": 128' in (run/'notebooks/03_train.ipynb').read_text()  # the executed copy records them
