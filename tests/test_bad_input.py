"Bad input gets an error that names the fix, and loses nothing already written."
import json, numpy as np, pytest, torch
from probing_sota.core import (ConfigError, CheckpointError, DataNotFoundError, prepare_run_dir, save_json,
                               load_checkpoint, get_device)
from probing_sota.data import load_dataset, DeviceLoader, BatchTransform, make_synthetic
from probing_sota.models import create_model, freeze, model_from_checkpoint, checkpoint_model

def test_unknown_dataset():
    with pytest.raises(ConfigError, match="Unknown dataset 'cifar11': choose one of .*'cifar10'"): load_dataset('cifar11')

def test_unknown_model():
    with pytest.raises(ConfigError, match="Unknown model 'resnet500'.*timm model name"): create_model('resnet500')

def test_missing_data_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('PROBING_SOTA_OFFLINE', '1')
    monkeypatch.setattr('probing_sota.data.DEFAULT_CACHE', tmp_path/'cache')
    with pytest.raises(DataNotFoundError, match=r"'cifar10' \(train\) was not found in .*downloads are off: pass data_root=.*cifar-10-batches-py"):
        load_dataset('cifar10', data_root=tmp_path)
    monkeypatch.setattr('probing_sota.data.SYSTEM_DATA_DIRS', {})
    with pytest.raises(DataNotFoundError, match='apt-get install dataset-fashion-mnist'):
        load_dataset('fashion_mnist', data_root=tmp_path)

def test_missing_weights_offline(monkeypatch):
    monkeypatch.setenv('PROBING_SOTA_OFFLINE', '1')
    with pytest.raises(DataNotFoundError, match="model='efficientnet_lite0'.*weights=PATH.*weights=None"):
        create_model('resnet50', num_classes=10)

def test_torchvision_weights_from_cache(tmp_path, monkeypatch):
    "The online path of the seeds' recipe (ResNet-50 ImageNet weights) with a stand-in file in torch's cache."
    import torchvision
    from probing_sota.models import torch_cache_file, get_spec
    f = torch_cache_file(get_spec('resnet50')); f.parent.mkdir(parents=True)
    sd = torchvision.models.resnet50().state_dict(); torch.save(sd, f)
    model, info = create_model('resnet50', num_classes=10, input_size=224)
    assert info.weights_source == f'cache:{f}' and info.target_layer == 'layer4' and model.fc.out_features == 10
    assert torch.equal(model.conv1.weight, sd['conv1.weight'])

def test_corrupt_and_mismatched_checkpoints(tmp_path):
    model, info = create_model('efficientnet_lite0', num_classes=10, input_size=64, weights=None)
    good = checkpoint_model(model, info, tmp_path/'best.pt')
    (tmp_path/'cut.pt').write_bytes(good.read_bytes()[:len(good.read_bytes())//2])
    with pytest.raises(CheckpointError, match='corrupt or truncated.*rerun the training stage'): model_from_checkpoint(tmp_path/'cut.pt')
    (tmp_path/'noise.pt').write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CheckpointError, match='corrupt or truncated'): load_checkpoint(tmp_path/'noise.pt')
    with pytest.raises(CheckpointError, match='trained for 10 classes but 100 were asked for'): model_from_checkpoint(good, num_classes=100)
    with pytest.raises(CheckpointError, match='does not fit resnet18'): create_model('resnet18', num_classes=10, weights=good)

def test_unknown_strategy_and_bad_values():
    model, info = create_model('efficientnet_lite0', num_classes=3, input_size=64, weights=None)
    with pytest.raises(ConfigError, match="Unknown strategy 'frozen'.*'two_phase'"): freeze(model, info, 'frozen')
    with pytest.raises(ConfigError, match='at least 32'): create_model('efficientnet_lite0', input_size=8, weights=None)
    with pytest.raises(ConfigError, match='at least 1'): DeviceLoader(make_synthetic(8), BatchTransform(32), batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device='auto' or 'cpu'"): get_device('cuda')

def test_run_dir_with_another_run_keeps_its_files(tmp_path):
    run = prepare_run_dir(tmp_path/'run', {'dataset': 'synthetic', 'lr': 1e-3, 'device': 'cpu'})
    save_json({'acc': 0.9}, run/'metrics.json')
    with pytest.raises(ConfigError, match="parameters differ: lr.*exist='resume'.*exist='overwrite'"):
        prepare_run_dir(run, {'dataset': 'synthetic', 'lr': 1e-2, 'device': 'cpu'})
    assert json.loads((run/'metrics.json').read_text()) == {'acc': 0.9}  # nothing lost
    assert json.loads((run/'config.json').read_text())['params']['lr'] == 1e-3
    prepare_run_dir(run, {'dataset': 'synthetic', 'lr': 1e-2, 'device': 'cpu'}, exist='resume')
    assert (run/'metrics.json').exists()
