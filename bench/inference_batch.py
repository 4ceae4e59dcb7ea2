"""Forward passes without gradients at several batch sizes, on the quickstart's model and inputs: EfficientNet-Lite0 (ImageNet
weights) at 56 px on real Fashion-MNIST training images, through the same `DeviceLoader` and transform, in one process —
the frozen layers' one pass (`train.cache_inputs`, what a `last_block` fine-tune runs once instead of every epoch) and the
whole model's prediction (`evaluate.predict`, as evaluation, the corruption sweep and the diagnosis run it).

    python bench/inference_batch.py [--n 6000] [--batches 32,64,128,256] [--repeats 3] [--device auto] [--size 56]

Prints images/s per batch size and pass, and the ratio against batch 256 (what both used before `core.inference_batch`)."""
import argparse, time
import torch
from probing_sota.core import get_device, inference_batch
from probing_sota.data import load_dataset, DeviceLoader
from probing_sota.models import create_model
from probing_sota.evaluate import predict
from probing_sota.train import cache_inputs, frozen_prefix

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=6000); ap.add_argument('--batches', default='32,64,128,256')
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--device', default='auto'); ap.add_argument('--size', type=int, default=56)
    ap.add_argument('--model', default='efficientnet_lite0')
    a = ap.parse_args()
    dev = get_device(a.device); data = load_dataset('fashion_mnist', 'train')
    data = data.subset(range(min(a.n, len(data))))
    model, info = create_model(a.model, num_classes=10, weights='imagenet', input_size=a.size)
    model = model.to(dev).eval(); tf = info.transform()
    probe = tf.to(dev)(torch.from_numpy(data.images[:8].copy()).permute(0, 3, 1, 2).to(dev))
    first, _ = frozen_prefix(model, list(info.last_block) + [info.head], probe)
    n = len(data); rates = {}
    passes = {'frozen layers': lambda b: cache_inputs(model, first, DeviceLoader(data, tf, b, device=dev)),
              'whole model': lambda b: predict(model, data, tf, b, dev)}
    for _ in range(a.repeats):  # the batch sizes interleaved, so that a slower minute of the machine hits them all
        for name, run in passes.items():
            for b in map(int, a.batches.split(',')):
                t = time.perf_counter(); run(b)
                if dev.type == 'cuda': torch.cuda.synchronize()
                rates[name, b] = max(rates.get((name, b), 0.0), n/(time.perf_counter() - t))
    for (name, b), r in rates.items():
        print(f"{name:13s} batch {b:4d}: {r:7.0f} images/s, {r/rates.get((name, 256), r):.2f}x batch 256")
    print(f"inference_batch({dev.type}) = {inference_batch(dev)}")

if __name__ == '__main__': main()
