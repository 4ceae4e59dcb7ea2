"""Images/s of the device-resident loader (DeviceLoader + BatchTransform) against a plain torchvision
DataLoader pipeline (per-image v2 transforms, worker processes), on the same images, in one process.

    python bench/loader_throughput.py [--device auto] [--n 20000] [--size 64] [--train-step]

Without --train-step it times data delivery alone (batches on the device, ready for the model); with it,
one EfficientNet-Lite0 training step per batch as well (bf16 autocast and channels_last on CUDA)."""
import argparse, time, os
import numpy as np, torch
from torch.utils.data import Dataset, DataLoader
from probing_sota.core import get_device
from probing_sota.data import load_dataset, stratified_subset, DeviceLoader, BatchTransform, sample_transform, Augment
from probing_sota.models import create_model, freeze, train_mode

class ArrayDataset(Dataset):
    def __init__(self, data, tf): self.data, self.tf = data, tf
    def __len__(self): return len(self.data)
    def __getitem__(self, i): return self.tf(self.data.images[i]), int(self.data.labels[i])

def timed(batches, dev, step=None, max_batches=None):
    n, t0 = 0, None
    for i, b in enumerate(batches):
        x, y = b[0].to(dev, non_blocking=True), b[1].to(dev, non_blocking=True)
        if step: step(x, y)
        if dev.type == 'cuda': torch.cuda.synchronize()
        if i == 1: t0 = time.perf_counter(); n = 0  # skip the first batch (warm-up, worker start)
        elif i > 1: n += len(y)
        if max_batches and i >= max_batches: break
    return n/(time.perf_counter() - t0)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--device', default='auto'); ap.add_argument('--n', type=int, default=20000)
    ap.add_argument('--size', type=int, default=64); ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--workers', type=int, default=min(8, os.cpu_count())); ap.add_argument('--train-step', action='store_true')
    ap.add_argument('--max-batches', type=int, default=None)
    a = ap.parse_args(); dev = get_device(a.device)
    data = stratified_subset(load_dataset('fashion_mnist', 'train'), a.n)
    aug = Augment(crop_scale=(0.8, 1.0))
    step = None
    if a.train_step:
        model, info = create_model('efficientnet_lite0', num_classes=10, input_size=a.size)
        cl = torch.channels_last; model = model.to(dev, memory_format=cl); freeze(model, info, 'full'); train_mode(model)
        opt = torch.optim.AdamW(model.parameters(), 1e-3); bf16 = dev.type == 'cuda'
        def step(x, y):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=cl)).float(), y)
            opt.zero_grad(); loss.backward(); opt.step()
    ours = DeviceLoader(data, BatchTransform(a.size, train=True, aug=aug), a.batch, shuffle=True, device=dev)
    peer = DataLoader(ArrayDataset(data, sample_transform(a.size, train=True, aug=aug)), a.batch, shuffle=True,
                      num_workers=a.workers, pin_memory=dev.type == 'cuda', persistent_workers=False)
    if step is not None:  # warm-up of the model alone, at both batch shapes (the full one and the last, smaller one):
        # on CUDA the first step at a new shape builds its cuDNN plans (seconds); whichever loader came first would pay for it
        for b in {a.batch, len(data) % a.batch} - {0}:
            xw = torch.randn(b, 3, a.size, a.size, device=dev); yw = torch.randint(0, 10, (b,), device=dev)
            for _ in range(5): step(xw, yw)
        if dev.type == 'cuda': torch.cuda.synchronize()
    r_ours = timed(((x, y) for x, y, _ in ours), dev, step, a.max_batches)
    r_peer = timed(peer, dev, step, a.max_batches)
    what = 'train step' if a.train_step else 'data only'
    print(f"device {dev} | {len(data)} Fashion-MNIST images -> {a.size}px, batch {a.batch}, {what}")
    print(f"  DeviceLoader (ours):                        {r_ours:9.0f} images/s")
    print(f"  torchvision DataLoader ({a.workers} workers, v2):     {r_peer:9.0f} images/s")
    print(f"  ratio ours/peer: {r_ours/r_peer:.2f}x")

if __name__ == '__main__': main()
