"""Training steps of the quickstart's last block on its cached inputs, with PyTorch's convolutions and with `tiny_map_convs`, in
one process on the same inputs: EfficientNet-Lite0 (ImageNet weights) at 56 px, whose last block and head see 2×2 maps; the
inputs are what its frozen layers make of real Fashion-MNIST training images (`cache_inputs`), the steps `run_epoch`'s own.

    python bench/tiny_map_convs.py [--n 3840] [--batch 128] [--repeats 3] [--size 56] [--model efficientnet_lite0]

Prints images/s of each and the ratio (tiny_map_convs against PyTorch's), and the largest difference of the logits and the
gradients of one step from the same weights (03_train tests them too)."""
import argparse, time, copy
from contextlib import nullcontext
import torch
from probing_sota.data import load_dataset, DeviceLoader
from probing_sota.models import create_model, freeze, train_mode
from probing_sota.train import cache_inputs, frozen_prefix, skipping, tiny_map_convs, run_epoch, TensorBatches, make_optimizer

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=3840); ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--size', type=int, default=56)
    ap.add_argument('--model', default='efficientnet_lite0')
    a = ap.parse_args()
    data = load_dataset('fashion_mnist', 'train'); data = data.subset(range(min(a.n, len(data))))
    model, info = create_model(a.model, num_classes=10, weights='imagenet', input_size=a.size)
    model = model.to(memory_format=torch.channels_last); tf = info.transform(channels_last=True)
    probe = tf(torch.from_numpy(data.images[:8].copy()).permute(0, 3, 1, 2))
    first, prefix = frozen_prefix(model, list(info.last_block) + [info.head], probe)
    x, y = cache_inputs(model, first, DeviceLoader(data, tf, 64))
    print(f"{a.model} at {a.size} px: {first} onwards trains on cached {tuple(x.shape[1:])} inputs, {len(y)} images, batches of {a.batch}")
    rates, logits, grads = {}, {}, {}
    for _ in range(a.repeats):  # interleaved, so that a slower minute of the machine hits both
        for name, convs in [('PyTorch convolutions', nullcontext), ('tiny_map_convs', tiny_map_convs)]:
            m = copy.deepcopy(model); freeze(m, info, 'last_block'); train_mode(m)
            opt = make_optimizer([p for p in m.parameters() if p.requires_grad], 'adamw', 1e-3)
            with skipping(m, prefix), convs(m):
                out = m(x[:a.batch].float().contiguous(memory_format=torch.channels_last))  # one step's logits and gradients
                torch.nn.functional.cross_entropy(out, y[:a.batch]).backward()
                logits[name], grads[name] = out.detach(), [p.grad.clone() for p in m.parameters() if p.requires_grad]
                m.zero_grad(set_to_none=True)
                t = time.perf_counter()
                run_epoch(m, TensorBatches(x, y, a.batch, shuffle=True, memory_format=torch.channels_last), opt, n=len(y), num_classes=10)
                rates[name] = max(rates.get(name, 0.0), len(y)/(time.perf_counter() - t))
    for name, r in rates.items(): print(f"{name:22s} {r:7.0f} images/s")
    a_, b_ = 'tiny_map_convs', 'PyTorch convolutions'
    g = max(float((u - v).abs().max()/v.abs().max().clamp_min(1e-12)) for u, v in zip(grads[a_], grads[b_]) if v.abs().max() > 1e-6)
    print(f"tiny_map_convs / PyTorch: {rates[a_]/rates[b_]:.2f}x; one step from the same weights: largest logit difference "
          f"{(logits[a_] - logits[b_]).abs().max():.1e}, largest gradient difference {g:.1e} of the gradient's largest")

if __name__ == '__main__': main()
