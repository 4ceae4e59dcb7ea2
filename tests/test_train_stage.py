"The fine-tuning stage end to end: the seeds' recipe unchanged on a CIFAR-format fixture, two_phase, early stopping, MixUp."
import json, numpy as np, pandas as pd, pytest, torch, torchvision
from probing_sota.data import make_synthetic, write_cifar_folder
from probing_sota.models import torch_cache_file, get_spec, model_from_checkpoint
from probing_sota.train import train_stage, preset

def test_seed_recipe_runs_unchanged_on_a_cifar_fixture(tmp_path):
    "ResNet-50 'ImageNet' weights (a stand-in file in torch's cache), CIFAR-10 at 224 px, 3 epochs, Adam 1e-4, cross-entropy."
    f = torch_cache_file(get_spec('resnet50')); f.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet50().state_dict(), f)
    write_cifar_folder(tmp_path/'data', make_synthetic(40, 4, seed=1), make_synthetic(8, 4, seed=2))
    params = preset('seed-resnet50-cifar10', data_root=tmp_path/'data', device='cpu', progress=False)
    summary = train_stage(tmp_path/'run', **params)
    log = pd.read_csv(tmp_path/'run/train_log.csv')
    assert log.epoch.tolist() == [1, 2, 3] and summary['n_train'] == 36 and summary['n_val'] == 4
    cfg = json.loads((tmp_path/'run/config.json').read_text())['params']
    assert (cfg['model_name'], cfg['input_size'], cfg['lr'], cfg['optimizer'], cfg['epochs']) == ('resnet50', 224, 1e-4, 'adam', 3)
    model, info = model_from_checkpoint(tmp_path/'run/model/best.pt')
    assert info.arch == 'resnet50' and info.num_classes == 4 and info.weights_source.startswith('cache:') and info.target_layer == 'layer4'
    assert np.load(tmp_path/'run/dynamics.npz')['p_true'].shape == (3, 36)

def test_two_phase_unfreezes_the_last_block(tmp_path):
    train_stage(tmp_path/'r', dataset='synthetic', strategy='two_phase', epochs=2, switch_epoch=1, input_size=32, n_train=96,
                batch_size=32, progress=False)
    log = pd.read_csv(tmp_path/'r/train_log.csv')
    assert log.strategy.tolist() == ['head', 'last_block'] and log.trainable_params.is_monotonic_increasing

def test_early_stopping(tmp_path):
    s = train_stage(tmp_path/'r', dataset='synthetic', strategy='head', augment='none', epochs=6, lr=1e-9, patience=1,
                    input_size=32, n_train=96, batch_size=32, progress=False)
    assert s['stopped_early'] and s['epochs_run'] == 2 and len(pd.read_csv(tmp_path/'r/train_log.csv')) == 2
    assert json.loads((tmp_path/'r/config.json').read_text())['params']['feature_cache'] is True

def test_mixup_cutmix_train(tmp_path):
    s = train_stage(tmp_path/'r', dataset='synthetic', augment={'mixup': 0.4, 'cutmix': 1.0}, epochs=1, input_size=32,
                    n_train=96, batch_size=32, progress=False)
    assert np.isfinite(np.load(tmp_path/'r/dynamics.npz')['p_true']).all() and 0 <= s['final_train_acc'] <= 1
