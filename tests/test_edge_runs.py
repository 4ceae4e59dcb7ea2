"""Edge runs through every default stage (#39): a stock model on a test split of one photo per class whose only mistakes are
of one class. (A run without any mistake: test_stock_probe's name-folder probe.)"""
import json
from pathlib import Path
import pandas as pd
from probing_sota.data import write_imagenet_photos
from probing_sota.pipeline import PROBE_STAGES
from conftest import run_cli, STOCK_ARCH as ARCH, STOCK_BUDGETS as BUDGETS

NBS = Path(__file__).resolve().parent.parent/'nbs'

cli = run_cli  # probing-sota in a process of its own

def test_cli_probe_one_image_per_class_mistakes_of_one_class(stock, tmp_path):
    """Edge runs through every default stage (#39): split folders whose test split holds one photo per class, and whose only
    mistakes are of one class (a goose photo filed as 'tabby', a class the model may not predict here); the training split
    gives the later stages neighbours, label issues and the spurious-context check to run on."""
    root = tmp_path/'split'
    write_imagenet_photos(root, 'name', 'train'); write_imagenet_photos(root, 'name', 'test')
    sorted((root/'test'/'jeep').iterdir())[1].unlink()  # the second jeep: one image per class
    (root/'test'/'goose').rename(root/'test'/'tabby')
    r = cli('probe', '--model', ARCH, '--weights', stock/'lite0.pt', '--data', 'imagefolder', '--data-root', root,
            '--classes', stock/'imagenet_classes.txt', *BUDGETS, '--nbs', NBS, '--name', 'oneper', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'oneper'
    done = json.loads((run/'pipeline.json').read_text())['stages']
    assert list(done) == PROBE_STAGES and all(v['status'] == 'done' for v in done.values()), done
    pred = pd.read_csv(run/'predictions.csv'); names = pd.read_csv(run/'class_names.csv').name.tolist()
    assert len(pred) == 19 and (pred.label.value_counts() == 1).all()
    wrong = pred[pred.label != pred.pred]
    assert {names[c] for c in wrong.label} == {'tabby'}, wrong  # every mistake of one class
    diag = pd.read_csv(run/'hard'/'diagnosis.csv')
    assert set(wrong['index']) <= set(diag['index']) and diag.diagnosis.notna().all()
    report = (run/'report.html').read_text()
    assert 'The model made no mistakes' not in report and 'Why each mistake' in report and 'Not in this run' not in report
    assert (run/'figures'/'diagnosis_shares.png').exists() and (run/'gallery.html').exists()
