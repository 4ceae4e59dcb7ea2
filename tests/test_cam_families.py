"Our Grad-CAM and HiResCAM against pytorch-grad-cam's across architecture families (random weights, small inputs): CNNs, ConvNeXt, ViTs (class and register tokens), Swin (channels-last), timm and torchvision."
import warnings, pytest, torch, torch.nn as nn
from probing_sota.cam import compute_cams, peer_agreement
from probing_sota.models import create_model, find_cam_layer

def registered(name, size):
    "A model as the pipeline builds it (random weights, 5 classes): its ModelInfo names the CAM layer."
    model, info = create_model(name, num_classes=5, weights=None, input_size=size)
    return model, info.target_layer, info

def found(model, size):
    "A model built here, the CAM layer found the way the package finds it for a user's model."
    return model, find_cam_layer(model.eval(), size)['layer'], None

def timm_vit_registers(size):
    import timm
    return found(timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=5, img_size=size, reg_tokens=4), size)

def timm_swin(size):
    "timm's Swin at small dimensions (swin_tiny at 224 px takes a minute on two cores): same code, channels-last stages."
    from timm.models.swin_transformer import SwinTransformer
    return found(SwinTransformer(img_size=size, patch_size=4, window_size=4, embed_dim=24, depths=(1, 1, 1), num_heads=(1, 2, 4), num_classes=5), size)

def torchvision_vit(size):
    "torchvision's ViT at small dimensions (vit_b_16 is slow on CPU): same code, same token layout."
    from torchvision.models.vision_transformer import VisionTransformer
    m = VisionTransformer(image_size=size, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5)
    nn.init.normal_(m.heads.head.weight, std=0.02)  # torchvision zero-initialises the head: every gradient would be 0
    return found(m, size)

def torchvision_swin(size):
    from torchvision.models.swin_transformer import SwinTransformer
    return found(SwinTransformer([4, 4], 24, [1, 1, 1], [1, 2, 4], [4, 4], num_classes=5), size)

FAMILIES = {  # name: (builder, input size); ConvNeXt has a test of its own below
    'mobilenetv3_small_050': (lambda: registered('mobilenetv3_small_050', 64), 64),
    'regnetx_002': (lambda: registered('regnetx_002', 64), 64),
    'vit_tiny_patch16_224': (lambda: registered('vit_tiny_patch16_224', 64), 64),
    'timm_vit_registers': (lambda: timm_vit_registers(64), 64),
    'timm_swin': (lambda: timm_swin(64), 64),
    'torchvision_vit': (lambda: torchvision_vit(64), 64),
    'torchvision_swin': (lambda: torchvision_swin(64), 64),
}

@pytest.mark.parametrize('family', list(FAMILIES))
def test_ours_agree_with_pytorch_grad_cam(family):
    build, size = FAMILIES[family]
    torch.manual_seed(0)
    with warnings.catch_warnings(): warnings.simplefilter('ignore'); model, layer, info = build()
    model.eval(); x = torch.randn(2, 3, size, size); t = [1, 3]
    res = compute_cams(model, x, t, layer, info)
    assert not res['zero'].all(), f'{family}: every map is zero at {layer}, the comparison would say nothing'
    h, w = res['map_size']  # a square input gives a square map: Swin's B×h×w×C read as B×C×h×w would give h×C
    assert h == w >= 2 and res['cams'][0].shape == (2, size, size)
    agree = peer_agreement(model, x, t, layer, info, methods=['gradcam', 'hirescam'])
    assert not agree.error.any(), agree.error.tolist()
    assert agree.agree.all(), agree.to_string()

def test_convnext_hirescam_at_a_stage_output_is_rounding_noise_and_the_tolerance_says_so():
    "A ConvNeXt stage feeds a LayerNorm over channels: sum_c A_c dy/dA_c is ~0 there, and HiResCAM's map is float32 noise."
    torch.manual_seed(0)
    model, _, info = registered('convnext_atto', 64); model.eval()
    x = torch.randn(4, 3, 64, 64); t = [1, 3, 0, 2]; layer = 'stages.1'  # the package's choice at 64 px (8×8)
    agree = peer_agreement(model, x, t, layer, info, methods=['gradcam', 'hirescam']).set_index('method')
    assert agree.agree.all() and not agree.error.any(), agree.to_string()
    assert agree.loc['gradcam', 'max_abs_diff'] < 1e-5 and agree.loc['gradcam', 'float32_floor'] < 1e-5
    assert agree.loc['hirescam', 'float32_floor'] > 1e-3 and agree.loc['hirescam', 'agree']  # the peer differs by rounding, within the floor
    model.get_submodule('stages.2.downsample.0').eps = 1e-1  # a large epsilon breaks the scale invariance
    agree = peer_agreement(model, x, t, layer, info, methods=['hirescam'])
    assert agree.max_abs_diff[0] < 1e-5, agree.to_string()
