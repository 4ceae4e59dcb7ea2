"""A stage's kernel with glibc's allocator as it comes against the kernel's settings (`pipeline.KERNEL_MALLOC`: freed memory
kept for the next batch), in fresh processes started alike, interleaved, on the same inputs: EfficientNet-Lite0 (ImageNet
weights) at 56 px through its frozen layers (`train.cache_inputs` of the folded model, the quickstart's largest pass) on real
Fashion-MNIST test images, and the baselines' small CNN training on real Fashion-MNIST training images.

    python bench/kernel_malloc.py [--n 4000] [--steps 100] [--repeats 2]

Prints images/s and minor page faults of each both ways, and the ratio."""
import argparse, json, os, resource, subprocess, sys, time

def measure(n:int, steps:int)->dict:
    "In this process: the two workloads' images/s and page faults."
    import numpy as np, torch, torch.nn.functional as F
    from probing_sota.data import load_dataset, DeviceLoader
    from probing_sota.models import create_model, folded_for_inference
    from probing_sota.train import cache_inputs, frozen_prefix
    from probing_sota.baselines import SmallCNN
    out = {}
    data = load_dataset('fashion_mnist', 'test'); data = data.subset(range(min(n, len(data))))
    model, info = create_model('efficientnet_lite0', num_classes=10, weights='imagenet', input_size=56)
    model = model.to(memory_format=torch.channels_last).eval(); tf = info.transform(channels_last=True)
    probe = tf(torch.from_numpy(data.images[:8].copy()).permute(0, 3, 1, 2))
    first, _ = frozen_prefix(model, list(info.last_block) + [info.head], probe)
    net = folded_for_inference(model, probe, keep=[first])
    cache_inputs(net, first, DeviceLoader(data.subset(range(256)), tf, 64))  # warm up oneDNN's kernels
    f0, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    cache_inputs(net, first, DeviceLoader(data, tf, 64))
    out['frozen layers'] = (len(data)/(time.perf_counter() - t), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    train = load_dataset('fashion_mnist', 'train'); torch.manual_seed(0)
    imgs, labels = torch.from_numpy(train.images[:steps*128].copy()).permute(0, 3, 1, 2), torch.from_numpy(train.labels[:steps*128].copy())
    cnn = SmallCNN(1, 10, 28).to(memory_format=torch.channels_last).train(); opt = torch.optim.AdamW(cnn.parameters(), lr=3e-3)
    def step(i):
        x = (imgs[i*128:(i + 1)*128].float()/255).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(cnn(x), labels[i*128:(i + 1)*128]); opt.zero_grad(); loss.backward(); opt.step()
    for i in range(5): step(i)
    f0, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for i in range(steps): step(i)
    out['small CNN training'] = (steps*128/(time.perf_counter() - t), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=4000); ap.add_argument('--steps', type=int, default=100)
    ap.add_argument('--repeats', type=int, default=2); ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: print(json.dumps(measure(a.n, a.steps))); return
    from probing_sota.pipeline import KERNEL_MALLOC
    base = {k: v for k, v in os.environ.items() if k not in KERNEL_MALLOC}
    ways = {"glibc's defaults": base, 'stage kernel (KERNEL_MALLOC)': {**base, **KERNEL_MALLOC}}
    best = {}
    for _ in range(a.repeats):  # interleaved, so that a slower minute of the machine hits both
        for how, env in ways.items():
            r = subprocess.run([sys.executable, __file__, '--child', '--n', str(a.n), '--steps', str(a.steps)], env=env,
                               capture_output=True, text=True, check=True)
            for name, (rate, faults) in json.loads(r.stdout.strip().splitlines()[-1]).items():
                if rate > best.get((name, how), (0, 0))[0]: best[name, how] = (rate, faults)
    print(f"{os.cpu_count()} CPUs; best of {a.repeats} fresh processes each way")
    for name in ('frozen layers', 'small CNN training'):
        (r0, f0), (r1, f1) = best[name, "glibc's defaults"], best[name, 'stage kernel (KERNEL_MALLOC)']
        print(f"{name:18s} glibc's defaults {r0:6.0f} images/s ({f0:8d} page faults), stage kernel {r1:6.0f} ({f1:8d}): {r1/r0:.2f}x")

if __name__ == '__main__': main()
