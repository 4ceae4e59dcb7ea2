"""`compare`: three real runs side by side. The files it writes; every statistic recomputed here from the runs' own
predictions.csv (with plain formulas, and a bootstrap for the intervals); bad input refused with nothing written."""
import json, math, re, shutil
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from probing_sota.core import ConfigError, ProbingError

# three architectures on the same 150 real Fashion-MNIST test images (32 px, 200 training images, one epoch each)
ARCHS = {'lite0': dict(model_name='efficientnet_lite0', weights='imagenet', strategy='head'),  # its real ImageNet weights
         'resnet10t': dict(model_name='resnet10t', weights=None, strategy='full'),
         'mobilenet': dict(model_name='mobilenetv3_small_050', weights=None, strategy='full')}
N_TEST = 150
SETS = ['wrong for every model'] + [f'wrong only for {m}' for m in ARCHS] + [f'right only for {m}' for m in ARCHS]

def _evaluate(run:Path, **kw):
    from probing_sota.evaluate import evaluate_stage
    from probing_sota.hard import hard_stage
    evaluate_stage(run, device='cpu', **{'n_test': N_TEST, **kw}); hard_stage(run)

@pytest.fixture(scope='module')
def runs(tmp_path_factory)->list[Path]:
    from probing_sota.train import train_stage
    root = tmp_path_factory.mktemp('compare')
    with pytest.MonkeyPatch.context() as mp:  # what conftest's _isolated_env gives each test
        mp.setenv('TORCH_HOME', str(root/'torch_home')); mp.setenv('PROBING_SOTA_CACHE', str(root/'image_cache'))
        mp.delenv('PROBING_SOTA_DATA', raising=False); mp.delenv('PROBING_SOTA_OFFLINE', raising=False)
        for name, kw in ARCHS.items():
            train_stage(root/name, dataset='fashion_mnist', n_train=200, epochs=1, lr=3e-3, input_size=32, batch_size=32,
                        train_embeddings=False, device='cpu', progress=False, **kw)
            _evaluate(root/name)
    return [root/n for n in ARCHS]

@pytest.fixture(scope='module')
def comparison(runs):
    from probing_sota.compare import compare
    return compare(runs, 'three', root=runs[0].parent, max_per_set=3)

def _correct(run:Path)->np.ndarray:
    p = pd.read_csv(run/'predictions.csv', usecols=['index', 'label', 'pred'])
    return (p.pred == p.label).to_numpy()

def test_writes_the_files(comparison, runs):
    out = comparison.dir
    for f in ['comparison/models.csv', 'comparison/pairs.csv', 'comparison/examples.csv', 'comparison/per_class.csv',
              'comparison/runs.json', 'figures/error_consistency.png', 'figures/per_class_accuracy.png', 'figures/accuracy.png',
              'report.html', 'gallery.html']:
        assert (out/f).is_file(), f
    assert not (out/'.lock').exists()
    m, p, e = (pd.read_csv(out/'comparison'/f) for f in ('models.csv', 'pairs.csv', 'examples.csv'))
    assert m.model.tolist() == list(ARCHS) and (m.n == N_TEST).all()
    assert {'accuracy', 'accuracy_low', 'accuracy_high', 'ece', 'misclassified', 'low_confidence', 'hard'} <= set(m.columns)
    assert list(zip(p.model_a, p.model_b)) == [('lite0', 'resnet10t'), ('lite0', 'mobilenet'), ('resnet10t', 'mobilenet')]
    assert {'accuracy_diff', 'accuracy_diff_low', 'accuracy_diff_high', 'mcnemar_p', 'error_consistency', 'error_consistency_low',
            'error_consistency_high', 'both_wrong', 'only_a_wrong', 'only_b_wrong'} <= set(p.columns)
    assert len(e) == N_TEST and list(e.columns[:3]) == ['index', 'label', 'label_name']
    for name, run in zip(ARCHS, runs):
        pr = pd.read_csv(run/'predictions.csv')
        assert (e['index'] == pr['index']).all() and (e.label == pr.label).all() and (e[f'pred_{name}'] == pr.pred).all()
        np.testing.assert_allclose(e[f'confidence_{name}'], pr.confidence)
        hard = json.loads((run/'hard/summary.json').read_text()); row = m.set_index('model').loc[name]
        assert (row.misclassified, row.low_confidence, row.hard) == (hard['misclassified'], hard['low_confidence'], hard['hard'])
        assert row.ece == pytest.approx(json.loads((run/'metrics.json').read_text())['ece'])
    wrong = np.stack([~_correct(r) for r in runs], 1)
    assert (e.n_wrong.to_numpy() == wrong.sum(1)).all()
    assert (e.set.fillna('') == 'wrong for every model').sum() == wrong.all(1).sum()
    report = (out/'report.html').read_text()
    assert re.findall(r'<img src="(?!data:)', report) == [] and report.count('<img src="data:image/png') == 3  # self-contained
    gallery = (out/'gallery.html').read_text()
    assert re.findall(r'data-set="([^"]+)"', gallery) == SETS
    rows = gallery.split('class="ps-cmp-row"')[1:]
    assert rows and all(r.split('</div>')[0].count('<img src="data:image/png') == 1 + len(ARCHS) for r in rows)  # image + each CAM

# the statistics, written out here from their definitions (the module calls scipy and scikit-learn)
Z = 1.959963984540054  # the normal's 97.5% quantile

def wilson(k:int, n:int)->tuple[float, float]:
    p = k/n; d = 1 + Z*Z/n; c = (p + Z*Z/(2*n))/d; h = Z*math.sqrt(p*(1 - p)/n + Z*Z/(4*n*n))/d
    return c - h, c + h

def mcnemar_exact(b:int, c:int)->float:
    "Two-sided exact McNemar: twice the smaller binomial tail of the discordant counts, at most 1."
    n = b + c
    return 1.0 if n == 0 else min(1.0, 2*sum(math.comb(n, k) for k in range(min(b, c) + 1))/2**n)

def newcombe(a:np.ndarray, b:np.ndarray)->tuple[float, float, float]:
    "Newcombe (1998) method 10 in the paired 2×2 table's notation (Fagerland, Lydersen & Laake 2017, ch. 8)."
    n = len(a); n11, n12, n21, n22 = (a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()
    p1, p2 = (n11 + n12)/n, (n11 + n21)/n; (l1, u1), (l2, u2) = wilson(n11 + n12, n), wilson(n11 + n21, n)
    prod = (n11 + n12)*(n21 + n22)*(n11 + n21)*(n12 + n22); A = n11*n22 - n12*n21
    psi = 0.0 if prod == 0 else (A - n/2)/math.sqrt(prod) if A > n/2 else 0.0 if A >= 0 else A/math.sqrt(prod)
    d = p1 - p2
    return (d, d - math.sqrt((p1 - l1)**2 + (u2 - p2)**2 - 2*psi*(p1 - l1)*(u2 - p2)),
            d + math.sqrt((p2 - l2)**2 + (u1 - p1)**2 - 2*psi*(p2 - l2)*(u1 - p1)))

def kappa(a:np.ndarray, b:np.ndarray)->float:
    "Geirhos et al. 2020: (c_obs - c_exp)/(1 - c_exp), c_exp from the two accuracies."
    c_obs = np.mean(a == b); pa, pb = a.mean(), b.mean(); c_exp = pa*pb + (1 - pa)*(1 - pb)
    return (c_obs - c_exp)/(1 - c_exp)

def kappa_se(a:np.ndarray, b:np.ndarray)->float:
    "Fleiss, Cohen & Everitt (1969), eq. 13, in terms of p_o and p_e."
    n = len(a); P = {(i, j): np.mean((a == i) & (b == j)) for i in (0, 1) for j in (0, 1)}
    row = {i: np.mean(a == i) for i in (0, 1)}; col = {j: np.mean(b == j) for j in (0, 1)}
    po, pe = P[0, 0] + P[1, 1], row[0]*col[0] + row[1]*col[1]
    s = (sum(P[i, i]*((1 - pe) - (col[i] + row[i])*(1 - po))**2 for i in (0, 1))
         + (1 - po)**2*sum(P[i, j]*(col[i] + row[j])**2 for i in (0, 1) for j in (0, 1) if i != j) - (po*pe - 2*pe + po)**2)
    return math.sqrt(s/(n*(1 - pe)**4))

def test_statistics_recomputed_from_predictions(comparison, runs):
    m, p = comparison.models.set_index('model'), comparison.pairs
    ok = {n: _correct(r) for n, r in zip(ARCHS, runs)}
    for n, c in ok.items():
        assert m.loc[n, 'accuracy'] == pytest.approx(c.mean(), abs=1e-12)
        assert (m.loc[n, 'accuracy_low'], m.loc[n, 'accuracy_high']) == pytest.approx(wilson(c.sum(), len(c)), abs=1e-9)
    rng = np.random.default_rng(0)
    for r in p.itertuples():
        a, b = ok[r.model_a], ok[r.model_b]
        assert (r.both_wrong, r.only_a_wrong, r.only_b_wrong) == ((~a & ~b).sum(), (~a & b).sum(), (a & ~b).sum())
        assert r.mcnemar_p == pytest.approx(mcnemar_exact((~a & b).sum(), (a & ~b).sum()), rel=1e-9, abs=1e-300)
        assert (r.accuracy_diff, r.accuracy_diff_low, r.accuracy_diff_high) == pytest.approx(newcombe(a, b), abs=1e-9)
        k, se = kappa(a, b), kappa_se(a, b)
        assert r.error_consistency == pytest.approx(k, abs=1e-9)
        assert (r.error_consistency_low, r.error_consistency_high) == pytest.approx((max(-1, k - 1.96*se), min(1, k + 1.96*se)), abs=1e-9)
        # the intervals against a bootstrap over the test examples
        boot = rng.integers(0, len(a), (2000, len(a)))
        ks = np.array([kappa(a[i], b[i]) for i in boot]); ds = a[boot].mean(1) - b[boot].mean(1)
        assert 0.85 < np.nanstd(ks)/se < 1.18, (np.nanstd(ks), se)
        assert np.percentile(ds, [2.5, 97.5]) == pytest.approx([r.accuracy_diff_low, r.accuracy_diff_high], abs=0.015)

def test_comparison_object(comparison, runs):
    from probing_sota.compare import Comparison, ComparisonGallery, ALL_WRONG
    again = Comparison(comparison.dir)  # opened from its folder alone
    pd.testing.assert_frame_equal(again.pairs, comparison.pairs)
    assert again.names == list(ARCHS) and list(again.sets) == SETS
    assert 'srcdoc=' in again.report().data
    g = again.gallery(page_size=2)
    assert isinstance(g, ComparisonGallery) and [v for _, v in g.set_w.options] == SETS
    g.set_w.value = ALL_WRONG
    assert g.rows_w.value.count('class="ps-cmp-row"') == min(2, len(again.sets[ALL_WRONG]))
    assert repr(again).startswith(f'Comparison({comparison.dir}): accuracy lite0 ')

def _refused(runs, root:Path, match:str, error=ConfigError, name:str='refused'):
    from probing_sota.compare import compare
    with pytest.raises(error, match=match): compare(runs, name, root=root)
    assert not (root/name).exists()  # nothing written

def test_refuses_runs_tested_on_different_examples(runs, tmp_path):
    fewer = shutil.copytree(runs[2], tmp_path/'fewer'); _evaluate(fewer, n_test=100)
    _refused([runs[0], fewer], tmp_path, r'lite0 and fewer were not tested on the same examples \(150 vs 100 test examples\)')
    other = shutil.copytree(runs[2], tmp_path/'other'); _evaluate(other, seed=1)  # 150 other test images
    _refused([runs[0], runs[1], other], tmp_path, r'lite0 and other .*\(test example \d+ is index \d+ vs \d+')
    mnist = shutil.copytree(runs[2], tmp_path/'mnist'); m = json.loads((mnist/'metrics.json').read_text())
    (mnist/'metrics.json').write_text(json.dumps({**m, 'dataset': 'mnist'}))
    _refused([runs[0], mnist], tmp_path, r"dataset 'fashion_mnist' vs 'mnist'.*rerun stage 04_evaluate")
    order = shutil.copytree(runs[2], tmp_path/'order'); cn = pd.read_csv(order/'class_names.csv')
    cn.assign(name=cn.name[::-1].to_numpy()).to_csv(order/'class_names.csv', index=False)
    _refused([runs[0], order], tmp_path, r"class 0 is 'T-shirt/top' vs 'Ankle boot'")

def test_refuses_one_run_a_missing_run_and_a_run_twice(runs, tmp_path):
    _refused(runs[:1], tmp_path, 'needs two runs or more, got 1')
    _refused([runs[0], tmp_path/'nowhere'], tmp_path, 'nowhere does not exist', ProbingError)
    _refused([runs[0], runs[1], runs[0]], tmp_path, 'is given twice')
    nomodel = shutil.copytree(runs[1], tmp_path/'nomodel', ignore=shutil.ignore_patterns('model'))
    _refused([runs[0], nomodel], tmp_path, r'has no model \(model/best.pt\)', ProbingError)

def test_refuses_an_output_folder_that_holds_a_run(runs, tmp_path):
    from probing_sota.compare import compare
    before = sorted(p.name for p in runs[1].iterdir())
    with pytest.raises(ConfigError, match='is one of the compared runs'): compare(runs, runs[1].name, root=runs[1].parent)
    other = tmp_path/'other_run'; other.mkdir(); (other/'config.json').write_text('{"params": {}}')
    with pytest.raises(ConfigError, match='holds a run, not a comparison'): compare(runs, 'other_run', root=tmp_path)
    assert sorted(p.name for p in runs[1].iterdir()) == before and [p.name for p in other.iterdir()] == ['config.json']
    _refused(runs, tmp_path, 'plain folder name', name='a/b')
