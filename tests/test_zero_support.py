"A test split without a class, and a training record without another: every stage after training and the report say so, no NaN, no crash."
import json, re, numpy as np, pandas as pd, pytest

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A tiny run evaluated on the synthetic test split less one class; its training record (dynamics.npz) less another class."
    from probing_sota.train import train_stage
    from probing_sota.models import run_model
    from probing_sota.data import load_dataset
    from probing_sota.evaluate import evaluate_model
    from probing_sota.hard import hard_stage
    from probing_sota.gallery import export_gallery_html
    from probing_sota.report import report_stage
    run = tmp_path_factory.mktemp('zs')/'run'
    train_stage(run, dataset='synthetic', epochs=2, lr=3e-3, input_size=32, n_train=96, batch_size=32, progress=False)
    model, info = run_model(run)
    test = load_dataset('synthetic', 'test')
    gone, untrained = 1, 2  # no test images of classes[1]; no training images of classes[2]
    evaluate_model(model, test.subset(np.flatnonzero(test.labels != gone)), run, info, device='cpu')
    with np.load(run/'dynamics.npz') as d: dyn = dict(d)
    keep = dyn['label'] != untrained  # as if the training split had held none of it (per-example arrays: examples on the last axis)
    np.savez(run/'dynamics.npz', **{k: v[..., keep] if v.shape[-1:] == keep.shape else v for k, v in dyn.items()})
    hard_stage(run, top_k=10)
    export_gallery_html(run, max_per_set=4)
    report_stage(run)
    return run, test.classes, gone, untrained

def no_nan(text:str)->dict:
    "Parse JSON, failing on NaN or Infinity."
    def bad(c): raise AssertionError(f'{c} in metrics.json')
    return json.loads(text, parse_constant=bad)

def test_evaluation_files(run):
    run, classes, gone, _ = run
    pc = pd.read_csv(run/'per_class.csv', keep_default_na=False)  # an empty cell stays ''
    r = pc.iloc[gone]
    assert (r['class'], r.support, r.recall, r.f1, r.note) == (classes[gone], 0, '', '', 'no test images')
    m = no_nan((run/'metrics.json').read_text())
    assert m['classes_without_test_images'] == [classes[gone]] and m['classes_scored'] == len(classes) - 1
    scored = pd.read_csv(run/'per_class.csv').drop(index=gone)
    assert abs(m['macro_f1'] - scored.f1.mean()) < 1e-9 and abs(m['balanced_accuracy'] - scored.recall.mean()) < 1e-9
    rep = (run/'classification_report.txt').read_text()
    assert 'nan' not in rep.lower() and re.search(rf'^\s*{classes[gone]}\s+\S+\s+—\s+—\s+0$', rep, re.M), rep
    cm = pd.read_csv(run/'confusion_matrix.csv', index_col=0)
    assert cm.loc[classes[gone]].sum() == 0 and cm.shape == (len(classes), len(classes))

def test_hard_stage(run):
    run, classes, gone, _ = run
    hp = pd.read_csv(run/'hard/per_class.csv', keep_default_na=False).set_index('class')
    assert (hp.loc[classes[gone], 'n_test'], hp.loc[classes[gone], 'hard_share'], hp.loc[classes[gone], 'note']) == (0, '', 'no test images')
    assert hp.index[-1] == classes[gone]  # sorts last, not as the class with the least hard share
    assert json.loads((run/'hard/summary.json').read_text())['classes_without_test_images'] == [classes[gone]]

def test_gallery(run):
    from probing_sota.gallery import Gallery
    run, classes, gone, _ = run
    doc = (run/'gallery.html').read_text()
    assert f'No test images</b> of {classes[gone]}' in doc and doc.count(' ps-none"') == len(classes)
    g = Gallery(run, page_size=4)
    assert (f'{classes[gone]} (no test images)', gone) in g.true_w.options
    g.true_w.value = gone  # choosing it shows that nothing is there
    assert 'No hard examples' in g.tiles_w.children[0].value

def test_report(run):
    run, classes, gone, untrained = run
    md, html = (run/'report.md').read_text(), (run/'report.html').read_text()
    for doc in (md, html):
        assert f'No test images: {classes[gone]}.' in doc  # the glance list
        assert f'No training images: {classes[untrained]}.' in doc
        assert 'nan' not in re.sub(r'<[^>]+>', ' ', doc).lower().split()
    worst = re.search(r'The worst class.*?; the best is', md).group(0)
    assert f'**{classes[gone]}**' not in worst and not re.search(rf'Worst class: {classes[gone]}\b', md)
    assert f'**No test images** for 1 class: {classes[gone]}.' in md
    assert f'**No training images** for 1 class: {classes[untrained]}.' in md
