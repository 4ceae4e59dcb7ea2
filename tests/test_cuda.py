"The GPU paths, run where there is a CUDA device (skipped elsewhere): the same answers as on the CPU."
import numpy as np, pytest, torch
from probing_sota.data import load_dataset, DeviceLoader
from probing_sota.models import create_model
from probing_sota.evaluate import predict
from probing_sota.cam import compute_cams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    data = load_dataset('synthetic', 'test', n=64)
    model, info = create_model('resnet18', num_classes=data.num_classes, weights=None, input_size=64)
    return data, model.eval(), info

def test_loader_keeps_data_on_the_gpu(setup):
    data, model, info = setup
    x, y, idx = next(iter(DeviceLoader(data, info.transform(train=True), batch_size=16, shuffle=True, device='cuda')))
    assert x.is_cuda and y.is_cuda and x.shape == (16, 3, 64, 64) and torch.isfinite(x).all()

def test_predict_cuda_bf16_matches_cpu(setup):
    data, model, info = setup
    cpu = predict(model, data, info.transform(), 32, 'cpu')
    gpu = predict(model, data, info.transform(), 32, 'cuda')  # bf16 autocast by default on CUDA
    assert (cpu['probs'].argmax(1) == gpu['probs'].argmax(1)).float().mean() > 0.9
    assert (cpu['probs'] - gpu['probs']).abs().max() < 0.05
    exact = predict(model, data, info.transform(), 32, 'cuda', bf16=False)
    assert torch.allclose(cpu['probs'], exact['probs'], atol=1e-3)

def test_cams_on_cuda_match_cpu(setup):
    data, model, info = setup
    x = info.transform()(torch.from_numpy(data.images[:16]).permute(0, 3, 1, 2))
    t = torch.as_tensor(data.labels[:16])
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # float32 on both sides, for an exact comparison
    cpu = compute_cams(model.cpu(), x, t, info=info)['cams'][0]
    for targets in [t.cuda(), t.tolist(), t.numpy()]:  # targets as a GPU tensor, a list, an array
        gpu = compute_cams(model.cuda(), x.cuda(), targets, info=info, bf16=False)['cams'][0]
        assert gpu.is_cuda and (gpu.cpu() - cpu).abs().max() < 1e-3
    torch.backends.cudnn.allow_tf32 = True
    half = compute_cams(model.cuda(), x.cuda(), t.cuda(), info=info)['cams'][0].cpu()  # bf16 forward, float32 maps
    assert np.corrcoef(half.flatten().numpy(), cpu.flatten().numpy())[0, 1] > 0.95
