"""The passes that only predict, with the model as built and with its batch norms folded (`folded_for_inference`), in one
process on the same inputs: EfficientNet-Lite0 (ImageNet weights) at 56 px on real Fashion-MNIST test images, through the
same `DeviceLoader` and transform — the frozen layers' one pass of a `last_block` fine-tune (`train.cache_inputs`) and the
whole model's prediction (`evaluate.predict`'s loop).

    python bench/folded_inference.py [--n 4000] [--repeats 3] [--device auto] [--size 56] [--model efficientnet_lite0]

Prints images/s of each pass both ways, the ratio, and the largest difference of the outputs."""
import argparse, time
import torch
from probing_sota.core import get_device, inference_batch
from probing_sota.data import load_dataset, DeviceLoader
from probing_sota.models import create_model, folded_for_inference
from probing_sota.train import cache_inputs, frozen_prefix

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=4000); ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--device', default='auto'); ap.add_argument('--size', type=int, default=56); ap.add_argument('--model', default='efficientnet_lite0')
    a = ap.parse_args()
    dev = get_device(a.device); data = load_dataset('fashion_mnist', 'test'); data = data.subset(range(min(a.n, len(data))))
    model, info = create_model(a.model, num_classes=10, weights='imagenet', input_size=a.size)
    model = model.to(dev, memory_format=torch.channels_last).eval(); tf = info.transform(channels_last=True)
    probe = tf.to(dev)(torch.from_numpy(data.images[:8].copy()).permute(0, 3, 1, 2).to(dev))
    first, _ = frozen_prefix(model, list(info.last_block) + [info.head], probe)
    folded = folded_for_inference(model, probe, keep=[first]); b = inference_batch(dev)
    def whole(m):
        with torch.no_grad(): return torch.cat([m(x) for x, _, _ in DeviceLoader(data, tf, b, device=dev)])
    passes = {'frozen layers': lambda m: cache_inputs(m, first, DeviceLoader(data, tf, b, device=dev), dtype=torch.float32)[0], 'whole model': whole}
    rates, outs = {}, {}
    for _ in range(a.repeats):  # interleaved, so that a slower minute of the machine hits both
        for name, run in passes.items():
            for how, m in [('as built', model), ('folded', folded)]:
                t = time.perf_counter(); outs[name, how] = run(m)
                if dev.type == 'cuda': torch.cuda.synchronize()
                rates[name, how] = max(rates.get((name, how), 0.0), len(data)/(time.perf_counter() - t))
    print(f"{a.model} at {a.size} px on {dev.type}, batches of {b}, {len(data)} images")
    for name in passes:
        d = (outs[name, 'folded'] - outs[name, 'as built']).abs().max()/outs[name, 'as built'].abs().max()
        print(f"{name:13s} as built {rates[name, 'as built']:6.0f} images/s, folded {rates[name, 'folded']:6.0f}: "
              f"{rates[name, 'folded']/rates[name, 'as built']:.2f}x; largest difference {d:.1e} of the largest output")

if __name__ == '__main__': main()
