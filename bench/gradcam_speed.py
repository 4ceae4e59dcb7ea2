"""Grad-CAM throughput: ours (gradient to the target layer only) against pytorch-grad-cam's GradCAM
(full backward) and against the forward pass alone, on the same model, layer, inputs and device, in one process.

    python bench/gradcam_speed.py [--device auto] [--model resnet50] [--size 224] [--batch 16] [--repeats 5]
    python bench/gradcam_speed.py --run runs/NAME   # also: CAMs for the whole test split vs plain evaluation

Models get random weights (the speed does not depend on them). Prints images/s and the ratios."""
import argparse, json, time
from pathlib import Path
import numpy as np, torch
from probing_sota.core import get_device
from probing_sota.models import create_model
from probing_sota.cam import compute_cams, peer_reference

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def rate(fn, n_images, repeats, dev):
    fn()  # warm-up
    if dev.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats): fn()
    if dev.type == 'cuda': torch.cuda.synchronize()
    return n_images*repeats/(time.perf_counter() - t)

def layer_bench(a, dev):
    model, info = create_model(a.model, num_classes=1000, weights=None, input_size=a.size)
    model = model.to(dev).eval(); x = torch.randn(a.batch, 3, a.size, a.size, device=dev); t = torch.arange(a.batch, device=dev) % 1000
    layer = model.get_submodule(info.target_layer)
    xcl = x.contiguous(memory_format=torch.channels_last)
    def fwd():
        with torch.no_grad(): model(x)
    def fwd_cl():
        with torch.no_grad(): model(xcl)
    ours = lambda: compute_cams(model, x, t, info=info)
    peer = lambda: peer_reference(model, x, t.tolist(), layer, 'gradcam')
    r_fwd, r_cl, r_ours, r_peer = (rate(f, a.batch, a.repeats, dev) for f in (fwd, fwd_cl, ours, peer))
    print(f"{a.model} @ {a.size}px, batch {a.batch}, layer {info.target_layer}, device {dev}")
    print(f"  forward only            {r_fwd:8.1f} images/s")
    print(f"  forward, channels-last  {r_cl:8.1f} images/s")
    print(f"  ours (grad to layer)    {r_ours:8.1f} images/s   {r_ours/r_fwd:.2f}x forward-only, {r_ours/r_cl:.2f}x channels-last forward")
    print(f"  pytorch-grad-cam        {r_peer:8.1f} images/s   {r_peer/r_fwd:.2f}x forward-only")
    print(f"  ours / pytorch-grad-cam {r_ours/r_peer:.2f}x")

def run_bench(a, dev):
    "CAMs for every test image of a run vs plain evaluation of the same images."
    from probing_sota.models import model_from_checkpoint
    from probing_sota.data import load_dataset, DeviceLoader
    run = Path(a.run); cfg = json.loads((run/'config.json').read_text())['params']
    model, info = model_from_checkpoint(run/'model/best.pt', device=dev); model.eval()
    data = load_dataset(cfg['dataset'], 'test', data_root=cfg.get('data_root'))
    dl = DeviceLoader(data, info.transform(), a.eval_batch, device=dev)
    def evaluate():
        with torch.no_grad():
            for x, _, _ in dl: model(x)
    def cams():
        for x, y, _ in dl: compute_cams(model, x, y, info=info)
    if dev.type == 'cuda': evaluate(); cams(); torch.cuda.synchronize()  # warm-up: cuDNN plans for every batch shape, lazy init
    t = time.perf_counter(); evaluate(); sync(dev); t_eval = time.perf_counter() - t
    t = time.perf_counter(); cams(); sync(dev); t_cam = time.perf_counter() - t
    print(f"{run}: {len(data)} test images at {info.input_size}px, batch {a.eval_batch}, device {dev}")
    print(f"  plain evaluation  {t_eval:7.1f} s ({len(data)/t_eval:.0f} images/s)")
    print(f"  Grad-CAM, all     {t_cam:7.1f} s ({len(data)/t_cam:.0f} images/s)   {t_cam/t_eval:.2f}x the evaluation time")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--device', default='auto'); ap.add_argument('--model', default='resnet50')
    ap.add_argument('--size', type=int, default=224); ap.add_argument('--batch', type=int, default=16); ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--run', default=None); ap.add_argument('--eval-batch', type=int, default=256)
    a = ap.parse_args(); dev = get_device(a.device); torch.manual_seed(0)
    layer_bench(a, dev)
    if a.run: run_bench(a, dev)
