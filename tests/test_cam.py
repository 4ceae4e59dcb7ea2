"Grad-CAM on transformers (reshape), the pytorch-grad-cam methods behind the same call, and degenerate maps."
import numpy as np, pytest, torch, torch.nn as nn, torchvision
from probing_sota.cam import compute_cams, peer_reference, tokens_to_map, cam_methods
from probing_sota.models import create_model

@pytest.fixture(scope='module')
def vit():
    torch.manual_seed(0)
    model, info = create_model('vit_b_16', num_classes=5, weights=None, input_size=224)
    return model.eval(), info

def test_vit_tokens_become_a_14x14_map_and_match_pytorch_grad_cam(vit):
    model, info = vit
    x = torch.randn(2, 3, 224, 224); t = [1, 3]
    res = compute_cams(model, x, t, info=info)
    assert res['layer'] == 'encoder.layers.encoder_layer_11.ln_1' and res['map_size'] == (14, 14)
    ref = peer_reference(model, x, t, model.get_submodule(res['layer']), 'gradcam', reshape=tokens_to_map)
    assert (res['cams'][0] - ref).abs().max() <= 1e-4

def test_swin_with_explicit_reshape():
    import timm
    torch.manual_seed(0)
    model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=4).eval()
    x = torch.randn(2, 3, 224, 224); layer = 'layers.3.blocks.1.norm1'
    res = compute_cams(model, x, [0, 2], layer=layer, reshape=tokens_to_map, method='layercam')
    assert res['map_size'] == (7, 7)
    ref = peer_reference(model, x, [0, 2], model.get_submodule(layer), 'layercam', reshape=tokens_to_map)
    assert (res['cams'][0] - ref).abs().max() <= 1e-4

@pytest.mark.parametrize('method', ['eigencam', 'xgradcam', 'scorecam'])
def test_pytorch_grad_cam_methods_by_name(method):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    res = compute_cams(model, x, 'pred', layer='layer3', method=method)
    assert method in cam_methods() and res['cams'][0].shape == (2, 64, 64) and res['map_size'] == (4, 4)
    assert torch.isfinite(res['cams'][0]).all() and res['cams'][0].max() <= 1 and res['cams'][0].min() >= 0

def test_all_zero_maps_are_flagged_not_nan():
    model = torchvision.models.resnet18(num_classes=3).eval()
    model.layer4.register_forward_hook(lambda m, i, o: o*0)  # no evidence reaches the head
    res = compute_cams(model, torch.randn(2, 3, 64, 64), [0, 1], layer='layer4')
    assert res['zero'].all() and torch.isfinite(res['cams'][0]).all() and res['cams'][0].abs().max() == 0
