"""The from-scratch baselines (08): k-NN against its two-loop reference and scikit-learn, gradient checks, the overfit sanity
checks, bad input, the stage's files in 04's schema, and the notebook as the pipeline runs it."""
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from probing_sota.core import ConfigError, ProbingError
from probing_sota.data import load_dataset, stratified_subset
from probing_sota.baselines import (flat_features, sq_l2_distances, sq_l2_two_loops, knn_predict, knn_two_loops, knn_neighbors,
    linear_inputs, svm_loss, softmax_loss, grad_check, train_linear, search_linear, TrainingDiverged, TwoLayerNet, SmallCNN,
    train_small_cnn, cnn_probs, baselines_stage, check_xy, BASELINES)
from conftest import copy_run, BASELINES_OUT

NBS = Path(__file__).resolve().parents[1]/'nbs'

@pytest.fixture(scope='module')
def fm():
    "Real Fashion-MNIST subsets: 3000 training and 400 test images (stratified)."
    train = stratified_subset(load_dataset('fashion_mnist', 'train'), 3000, seed=1)
    test = stratified_subset(load_dataset('fashion_mnist', 'test'), 400, seed=1)
    return train, test, flat_features(train), flat_features(test)

@pytest.fixture(scope='module')
def run(tiny_run, tmp_path_factory):
    "The shared tiny run on the generated shapes (trained and evaluated), copied without what stage 11 wrote there."
    return copy_run(tiny_run, tmp_path_factory.mktemp('b')/'run', drop=BASELINES_OUT)

TINY = dict(n_train=300, knn_ks='1,3,5', cv_folds=3, cv_n=300, curve_points=3, curve_test=100, lrs='0.03,0.3', regs='1e-4',
            linear_epochs=2, hidden=32, net_epochs=2, cnn_epochs=1, device='cpu', log=lambda *a: None)

# k-NN

def test_distances_equal_the_two_loop_reference(fm):
    _, _, Xtr, Xte = fm
    ref = sq_l2_two_loops(Xte[:15], Xtr[:250])
    np.testing.assert_allclose(sq_l2_distances(Xte[:15].astype(np.float64), Xtr[:250].astype(np.float64)), ref, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(sq_l2_distances(Xte[:15], Xtr[:250]), ref, rtol=1e-5, atol=1e-3)  # float32: rounding only
    assert (sq_l2_distances(Xtr[:40], Xtr[:40]) >= 0).all()  # clamped, even for an image against itself

def test_knn_equals_two_loops(fm):
    train, _, Xtr, Xte = fm
    for k in (1, 4, 7):
        p1, s1 = knn_predict(Xtr[:500], train.labels[:500], Xte[:40], k, 10)
        p2, s2 = knn_two_loops(Xtr[:500], train.labels[:500], Xte[:40], k, 10)
        np.testing.assert_array_equal(p1, p2); np.testing.assert_array_equal(s1, s2)

def test_knn_equals_scikit_learn_brute(fm):
    "Same predictions and vote shares, odd and even k (class ties go to the lower label in both)."
    from sklearn.neighbors import KNeighborsClassifier
    train, test, Xtr, Xte = fm
    X64, T64 = Xtr.astype(np.float64), Xte.astype(np.float64)  # both sides exact enough that no neighbour order is a coin toss
    for k in (1, 5, 6, 9):
        sk = KNeighborsClassifier(n_neighbors=k, algorithm='brute').fit(X64, train.labels)
        pred, shares = knn_predict(X64, train.labels, T64, k, 10)
        np.testing.assert_array_equal(pred, sk.predict(T64))
        np.testing.assert_allclose(shares, sk.predict_proba(T64))
    p32, _ = knn_predict(Xtr, train.labels, Xte, 5, 10)  # the float32 default agrees too
    assert (p32 == KNeighborsClassifier(n_neighbors=5, algorithm='brute').fit(X64, train.labels).predict(T64)).mean() >= 0.995

def test_chunked_equals_unchunked(fm):
    train, _, Xtr, Xte = fm
    whole = knn_predict(Xtr, train.labels, Xte, 5, 10, chunk=len(Xte))
    for chunk in (1, 37, 256):
        part = knn_predict(Xtr, train.labels, Xte, 5, 10, chunk=chunk)
        np.testing.assert_array_equal(part[0], whole[0]); np.testing.assert_array_equal(part[1], whole[1])
    np.testing.assert_allclose(sq_l2_distances(Xte[:50], Xtr[:500], chunk=7), sq_l2_distances(Xte[:50], Xtr[:500], chunk=512), rtol=1e-5, atol=1e-3)
    idx, dist = knn_neighbors(Xtr, Xte[:20], 5, chunk=3)
    assert (np.diff(dist, axis=1) >= 0).all()  # nearest first

# gradients and sanity checks

def test_linear_gradients(fm):
    train, _, Xtr, _ = fm
    X = linear_inputs(Xtr[:60], Xtr.mean(0)).astype(np.float64); y = train.labels[:60]
    W = np.random.default_rng(0).normal(0, 1e-3, (X.shape[1], 10))
    for fn in (svm_loss, softmax_loss):
        for reg in (0.0, 0.5):
            err = grad_check(lambda w: fn(w, X, y, reg)[0], W, fn(W, X, y, reg)[1], n=40, seed=reg > 0)
            assert err < 1e-6, (fn.__name__, reg, err)

def test_two_layer_net_gradients(fm):
    train, _, Xtr, _ = fm
    X = (Xtr[:25] - Xtr.mean(0)).astype(np.float64); y = train.labels[:25]
    net = TwoLayerNet(784, 20, 10, seed=3, dtype=np.float64)
    _, g = net.loss(X, y, reg=0.1)
    for k in net.params:
        err = grad_check(lambda w: net.loss(X, y, 0.1)[0], net.params[k], g[k], n=30)
        assert err < 1e-6, (k, err)

def test_two_layer_net_overfits_a_tiny_set(fm):
    train, _, Xtr, _ = fm
    X = Xtr[:40] - Xtr.mean(0); y = train.labels[:40]
    net = TwoLayerNet(784, 64, 10, seed=1)
    losses = net.train(X, y, lr=0.05, reg=0.0, epochs=60, batch_size=20, lr_decay=1.0)
    assert (net.predict_proba(X).argmax(1) == y).mean() == 1.0 and losses[-1] < 0.05

def test_small_cnn_overfits_a_tiny_set(fm):
    train = fm[0].subset(np.arange(40))
    torch.manual_seed(0)
    model = SmallCNN(1, 10, 28)
    assert all(abs(m.weight.std().item() - (2/(m.weight[0].numel()))**0.5) < 0.5*(2/m.weight[0].numel())**0.5
               for m in model.modules() if isinstance(m, torch.nn.Conv2d))  # He init: std sqrt(2/fan_in)
    train_small_cnn(model, train, epochs=30, lr=3e-3, batch_size=20, weight_decay=0.0, device='cpu')
    assert (cnn_probs(model, train, device='cpu').argmax(1) == train.labels).mean() == 1.0

# bad input

def test_k_larger_than_the_training_set(fm):
    train, _, Xtr, Xte = fm
    with pytest.raises(ConfigError, match=r'k=11 is larger than the training set \(10 examples\): choose k <= 10'):
        knn_predict(Xtr[:10], train.labels[:10], Xte, 11)
    with pytest.raises(ConfigError, match='k >= 1'): knn_predict(Xtr, train.labels, Xte, 0)

def test_mismatched_feature_sizes(fm):
    train, test, Xtr, Xte = fm
    with pytest.raises(ConfigError, match='Mismatched feature sizes: the training features have 784 values per example but the others 783'):
        knn_predict(Xtr, train.labels, Xte[:, 1:], 3)
    with pytest.raises(ConfigError, match='labels'): check_xy(Xtr, train.labels[:5])
    with pytest.raises(ConfigError, match='linear_inputs'):
        svm_loss(np.zeros((785, 10)), Xtr[:5], train.labels[:5])
    with pytest.raises(ConfigError, match='takes 784 features but got 700'): TwoLayerNet(784, 8, 10).scores(Xtr[:3, :700])
    rgb = load_dataset('synthetic', 'train', n=8)
    with pytest.raises(ConfigError, match=r'SmallCNN\(in_channels=3\)'): train_small_cnn(SmallCNN(1, 4, 32), rgb, epochs=1, device='cpu')

def test_a_diverging_learning_rate_is_stopped_and_named(fm):
    train, _, Xtr, _ = fm
    X = linear_inputs(Xtr[:1000], Xtr[:1000].mean(0)); y = train.labels[:1000]
    with pytest.raises(TrainingDiverged, match=r'diverged at step \d+: the loss went from .* with lr=1000\. Lower the learning rate, e\.g\. lr=100\.'):
        train_linear(svm_loss, X, y, 10, lr=1e3, reg=1.0, epochs=3)
    with pytest.raises(TrainingDiverged, match='Lower the learning rate'):
        TwoLayerNet(784, 32, 10).train(Xtr[:500] - Xtr.mean(0), train.labels[:500], lr=50.0, epochs=2)
    with pytest.raises(TrainingDiverged, match='lr=1000. Lower the learning rate, e.g. lr=100'):
        train_small_cnn(SmallCNN(1, 10, 28), fm[0].subset(np.arange(256)), epochs=1, lr=1e3, batch_size=64, device='cpu')
    table, W = search_linear(svm_loss, X[:800], y[:800], X[800:], y[800:], 10, lrs=[0.1, 1e3], regs=[1.0], epochs=2)
    assert table.diverged.tolist() == [False, True]  # in a search, a diverging setting is recorded, not fatal
    with pytest.raises(TrainingDiverged, match="try smaller ones, e.g. lrs='100,10'"):
        search_linear(svm_loss, X[:800], y[:800], X[800:], y[800:], 10, lrs=[1e3], regs=[1.0], epochs=2)
    assert issubclass(TrainingDiverged, ConfigError)

def test_stage_refuses_bad_parameters(run):
    with pytest.raises(ConfigError, match="Unknown baseline 'rf'"): baselines_stage(run, models='knn,rf', **TINY)
    with pytest.raises(ConfigError, match='choose k <= 300'): baselines_stage(run, models='knn', knn_k=301, **TINY)
    with pytest.raises(ConfigError, match='comma-separated'): baselines_stage(run, models='svm', **{**TINY, 'lrs': '0.1;0.3'})
    with pytest.raises(ProbingError, match='run the training stage'): baselines_stage(run.parent/'nothing', **TINY)

# the stage

def test_stage_on_a_tiny_run(run):
    comparison = baselines_stage(run, **TINY)
    b, figs = run/'baselines', run/'figures'
    run_table = pd.read_csv(run/'predictions.csv')
    assert comparison.kind.tolist() == ['ours']*len(BASELINES) + ['fine-tuned']
    assert comparison.model.tolist()[:5] == BASELINES and comparison.accuracy.between(0, 1).all()
    tables = {}
    for name in BASELINES:
        t = pd.read_csv(b/name/'predictions.csv'); tables[name] = t
        assert list(t.columns) == list(run_table.columns)  # 04's schema
        assert t['index'].tolist() == run_table['index'].tolist()  # the same test examples, in the same order
        assert np.isclose(json.loads((b/name/'metrics.json').read_text())['accuracy'], t.correct.mean())
    tables['finetuned'] = run_table
    missed = pd.read_csv(b/'all_missed.csv')
    for name, t in tables.items():
        assert not t[t['index'].isin(missed['index'])].correct.any(), name  # every listed example is wrong for every model
        assert (missed[name] == missed['index'].map(t.set_index('index').pred_name)).all()
    wrong_everywhere = set.intersection(*(set(t.loc[~t.correct, 'index']) for t in tables.values()))
    assert set(missed['index']) == wrong_everywhere  # and none is left out
    ov = pd.read_csv(b/'overlap.csv')
    assert ov.model.tolist() == BASELINES and (ov.both <= ov[['n_baseline', 'n_finetuned']].min(axis=1)).all()
    for f in ['knn_cv.png', 'knn_learning_curve.png', 'linear_templates.png', 'baselines_comparison.png']: assert (figs/f).stat().st_size > 1000
    assert pd.read_csv(b/'comparison.csv').model.tolist() == comparison.model.tolist()
    s = json.loads((b/'summary.json').read_text())
    assert s['knn']['k'] in (1, 3, 5) and s['n_train'] == 300 and s['all_missed'] == len(missed)

def test_stage_without_predictions_on_fashion_mnist(tmp_path):
    "A run that was never evaluated: the baselines still run on the real data; published references are listed, overlap skipped."
    (tmp_path/'config.json').write_text(json.dumps({'params': {'dataset': 'fashion_mnist', 'data_root': None}}))
    comparison = baselines_stage(tmp_path, models='knn,softmax', n_train=1000, n_test=200, knn_k=5, lrs='0.3', regs='1e-4',
                                 linear_epochs=2, log=lambda *a: None)
    assert comparison.kind.tolist() == ['ours', 'ours', 'published', 'published', 'published']
    assert comparison.set_index('model').accuracy['SVC rbf (published)'] == 0.897
    assert comparison.accuracy.iloc[0] > 0.6 and (comparison.n_test.iloc[:2] == 200).all()
    assert not (tmp_path/'baselines/overlap.csv').exists() and not (tmp_path/'figures/knn_cv.png').exists()  # k was given
    assert 'skipped' in json.loads((tmp_path/'baselines/summary.json').read_text())['overlap']

def test_notebook_with_parameters(run, tmp_path):
    "The stage notebook as the pipeline runs it: its parameters read by the pipeline, papermill with run_dir and overrides."
    import papermill as pm
    from probing_sota.pipeline import stage_parameters, stage_input
    spec = stage_parameters(NBS)['baselines']
    assert {'models', 'n_train', 'knn_k', 'cnn_epochs', 'device'} <= set(spec) and 'run_dir' not in spec
    part = tmp_path/'run'; shutil.copytree(run, part)
    baselines_stage(part, models='cnn', **TINY); assert (part/'baselines/cnn').exists()  # an earlier call, with another model
    with stage_input(NBS/'11_baselines.ipynb') as src:
        pm.execute_notebook(src, str(tmp_path/'out.ipynb'), parameters={'run_dir': str(part), 'models': 'knn,svm', 'knn_k': 3, 'n_train': 200,
                                                                        'device': 'cpu'}, cwd=str(NBS), kernel_name='python3', progress_bar=False)
    comparison = pd.read_csv(part/'baselines/comparison.csv')
    assert comparison.model.tolist()[:2] == ['knn', 'svm'] and len(comparison) == 3  # the overrides reached the stage
    assert json.loads((part/'baselines/knn/metrics.json').read_text())['k'] == 3
    assert json.loads((part/'baselines/summary.json').read_text())['n_train'] == 200
    assert not (part/'baselines/cnn').exists() and not (part/'figures/knn_cv.png').exists()  # nothing stale: k was given, no CV
