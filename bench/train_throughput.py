"""Training throughput of the probe's own loop: ResNet-50 at 224 px, bf16 autocast, channels-last, fed by the device-resident
loader (`DeviceLoader`, uint8 images on the GPU, resized and flipped there) on synthetic data, in images/s. Under torchrun the
same loop runs DistributedDataParallel and the figure is the global rate, with the scaling efficiency against one process.

    python bench/train_throughput.py [--model resnet50] [--size 224] [--batch 256] [--steps 50] [--device auto]
    torchrun --standalone --nproc-per-node 8 bench/train_throughput.py --batch 2048   # batch is the global batch

Reference figures: NVIDIA publishes ResNet-50 v1.5 training throughput (mixed precision, images/s per GPU class) in
https://github.com/NVIDIA/DeepLearningExamples/tree/master/PyTorch/Classification/ConvNets/resnet50v1.5#training-performance-results
Compare with the table for the same GPU and precision; there is no H100 table there, so on an H100 the comparison is against
its A100 80GB rows and says so. Models get random weights (speed does not depend on them)."""
import argparse, json, time
import numpy as np, torch
from probing_sota.core import init_distributed, world_size, is_main
from probing_sota.data import ImageData, DeviceLoader
from probing_sota.models import create_model
from probing_sota.train import make_optimizer, run_epoch, training_forward, micro_batching

REFERENCE = ('https://github.com/NVIDIA/DeepLearningExamples/tree/master/PyTorch/Classification/ConvNets/resnet50v1.5'
             '#training-performance-results')

def synthetic(n:int, size:int, classes:int=1000)->ImageData:
    rng = np.random.default_rng(0)
    return ImageData(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, classes, n).astype(np.int64),
                     [str(i) for i in range(classes)], 'synthetic', 'train', index=np.arange(n))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='resnet50'); p.add_argument('--size', type=int, default=224)
    p.add_argument('--batch', type=int, default=256, help='global batch (images per optimizer step, all ranks)')
    p.add_argument('--micro-batch', type=int, help='images per forward on a rank (default batch/ranks)')
    p.add_argument('--steps', type=int, default=50); p.add_argument('--device', default='auto')
    a = p.parse_args()
    dev = init_distributed(a.device); W = world_size()
    micro, acc = micro_batching(a.batch, a.micro_batch, W)
    model, info = create_model(a.model, num_classes=1000, weights=None, input_size=a.size)
    model = model.to(dev, memory_format=torch.channels_last)
    data = synthetic(a.batch*a.steps, a.size)  # uint8 at the input size: the loader's resize is a no-op, its flip is not
    tf = info.transform(train=True, channels_last=True)
    dl = DeviceLoader(data, tf, micro, shuffle=True, device=dev, shard=True, accumulate=acc)
    opt = make_optimizer(model.parameters(), 'sgd', 0.1, 5e-5); fwd = training_forward(model, dev)
    bf16 = dev.type == 'cuda'
    warm = DeviceLoader(synthetic(a.batch*3, a.size), tf, micro, shuffle=True, device=dev, shard=True, accumulate=acc)
    run_epoch(fwd, warm, opt, n=None, bf16=bf16, accumulate=acc)  # cuDNN plans, allocator
    if dev.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter(); r = run_epoch(fwd, dl, opt, n=None, bf16=bf16, accumulate=acc)
    if dev.type == 'cuda': torch.cuda.synchronize()
    secs = time.perf_counter() - t; rate = len(data)/secs
    if is_main():
        name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else dev.type
        print(json.dumps({'model': a.model, 'size': a.size, 'device': name, 'ranks': W, 'global_batch': a.batch, 'micro_batch': micro,
                          'accumulate': acc, 'images_per_s': round(rate, 1), 'images_per_s_per_rank': round(rate/W, 1),
                          'seconds': round(secs, 2), 'reference': REFERENCE}, indent=1))

if __name__ == '__main__': main()
