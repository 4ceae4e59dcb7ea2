"""Image folders: the first decode against torchvision's ImageFolder + DataLoader (as many workers as cores), a second
run's data cost, peak memory of a whole probe bounded by PROBING_SOTA_MAX_MEMORY, and the same folder with 1% bad files.

    python bench/imagefolder_cache.py [--n 20000] [--size 64] [--probe [--probe-size 224 --budget 64M]]

The folder is generated once (real Fashion-MNIST images upscaled to mixed sizes, and crops of scikit-image's photos,
re-encoded as JPEG) under $BENCH_DIR (default /tmp/probing_sota_bench). Ratios are printed; nothing is asserted."""
import argparse, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from PIL import Image

def make_folder(root:Path, n:int, seed:int=0)->Path:
    "n JPEGs in 10 class folders: Fashion-MNIST upscaled to 56-320 px (9 in 10) and photo crops of 200-640 px (1 in 10)."
    if (root/'.done').exists() and int((root/'.done').read_text()) == n: return root
    from skimage import data as skd
    from probing_sota.data import load_dataset
    shutil.rmtree(root, ignore_errors=True)
    fm = load_dataset('fashion_mnist', 'train'); rng = np.random.default_rng(seed)
    photos = [np.asarray(getattr(skd, k)()) for k in ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry')]
    photos = [p if p.ndim == 3 else np.stack([p]*3, -1) for p in photos]
    for i in range(n):
        c = int(fm.labels[i]); d = root/fm.classes[c].replace('/', '_'); d.mkdir(parents=True, exist_ok=True)
        if i % 10:
            s = int(rng.integers(56, 321)); im = Image.fromarray(fm.images[i][..., 0]).resize((s, int(s*rng.uniform(0.8, 1.25))), Image.BICUBIC)
        else:
            p = photos[i % len(photos)]; s = int(rng.integers(200, min(p.shape[:2]) + 1))
            y, x = rng.integers(0, p.shape[0] - s + 1), rng.integers(0, p.shape[1] - s + 1)
            im = Image.fromarray(p[y:y + s, x:x + s, :3])
        im.save(d/f'{i:06d}.jpg', quality=int(rng.integers(75, 96)))
    (root/'.done').write_text(str(n))
    return root

def add_bad_files(root:Path, share:float=0.01)->int:
    "Plant every kind of bad file (plant_bad_files) in sub-folders of the class folders until `share` of the files are unreadable."
    from probing_sota.data import plant_bad_files
    classes = sorted(p for p in root.iterdir() if p.is_dir()); n = sum(1 for _ in root.rglob('*.jpg')); k = 0; bad = 0
    while bad < share*n:
        planted = plant_bad_files(classes[k % len(classes)]/f'odd{k}'); bad += int((planted.kind == 'unreadable').sum()); k += 1
    return bad

def torchvision_pass(root:Path, size:int, workers:int)->tuple[float, str]:
    "Seconds for one pass of torchvision's ImageFolder + DataLoader at `size` (Resize + CenterCrop), or the error it stops with."
    import torch, torchvision.transforms.v2 as T
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.PILToTensor()])
    dl = torch.utils.data.DataLoader(ImageFolder(str(root), tf), batch_size=256, num_workers=workers)
    t0 = time.perf_counter()
    try:
        for _ in dl: pass
    except Exception as e: return time.perf_counter() - t0, f'{type(e).__name__}: {str(e).splitlines()[-1][:100]}'
    return time.perf_counter() - t0, ''

def ours_pass(root:Path, size:int, cache:Path)->tuple[float, float, float, object]:
    """(seconds of the first decode, then of a second run: listing and checking the folder for both splits, reading every
    image of both splits into memory; the cache)."""
    from probing_sota.data import cache_image_folder, load_dataset
    t0 = time.perf_counter(); fc = cache_image_folder(root, size, cache_dir=cache, progress=False, verbose=False); first = time.perf_counter() - t0
    t0 = time.perf_counter()
    splits = [load_dataset('imagefolder', s, data_root=root, image_size=size, cache_dir=cache, progress=False) for s in ('train', 'test')]
    t1 = time.perf_counter(); _ = [d.images.read() for d in splits]; t2 = time.perf_counter()
    return first, t1 - t0, t2 - t1, fc

def probe_peak_rss(root:Path, size:int, budget:str|None, workdir:Path)->tuple[float, float]:
    "Peak RSS (MB) of the largest process of a whole `probing-sota probe` (stages 04-09) on the folder, and its seconds."
    import torch, torchvision
    n_cls = sum(1 for p in root.iterdir() if p.is_dir() and not p.name.startswith('.'))
    f = workdir/'r18.pt'; torch.save(torchvision.models.resnet18(num_classes=n_cls).state_dict(), f)
    env = {**os.environ, 'PROBING_SOTA_CACHE': str(workdir/'cache')}
    if budget: env['PROBING_SOTA_MAX_MEMORY'] = budget
    else: env.pop('PROBING_SOTA_MAX_MEMORY', None)
    t0 = time.perf_counter()
    cmd = [sys.executable, '-c', 'import resource, sys; from probing_sota.pipeline import main; rc = main(sys.argv[1:]); '
           'print("PEAK", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)',
           'probe', '--model', 'resnet18', '--weights', str(f), '--data', 'imagefolder', '--data-root', str(root), '--input-size', str(size),
           '--crop-pct', '1', '--preset', 'tiny', '-p', 'gradcam.max_images=8', '-p', 'device=cpu', '--runs', str(workdir/'runs'),
           '--name', f'rss-{budget}', '--nbs', str(Path(__file__).resolve().parent.parent/'nbs')]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode: raise SystemExit(r.stdout[-2000:] + r.stderr[-2000:])
    peak = max(int(v) for v in next(l for l in r.stdout.splitlines() if l.startswith('PEAK')).split()[1:])
    return peak/1024, time.perf_counter() - t0

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--n', type=int, default=20_000); ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--probe', action='store_true', help='also measure peak RSS of whole probes (minutes)')
    ap.add_argument('--probe-size', type=int, default=224, help='the probed model\'s input size (the cache is decoded at it)')
    ap.add_argument('--budget', default='64M', help='PROBING_SOTA_MAX_MEMORY for the bounded probe')
    a = ap.parse_args()
    base = Path(os.environ.get('BENCH_DIR', '/tmp/probing_sota_bench')); workers = len(os.sched_getaffinity(0))
    t0 = time.perf_counter(); root = make_folder(base/f'folder{a.n}', a.n); print(f"folder: {a.n:,} JPEGs in {root} ({time.perf_counter() - t0:.0f} s to make or find)")
    cache = Path(tempfile.mkdtemp(dir=base))
    from probing_sota.data import stratified_split; stratified_split(np.arange(10) % 2, 0.2)  # imports warmed for both
    tv, err = torchvision_pass(root, a.size, workers)
    first, lookup, fill, fc = ours_pass(root, a.size, cache); second = lookup + fill
    print(f"\nfirst decode at {a.size} px, {workers} cores:")
    print(f"  torchvision ImageFolder + DataLoader({workers} workers): {tv:6.1f} s  {a.n/tv:7,.0f} img/s")
    print(f"  probing_sota cache_image_folder ({workers} processes):   {first:6.1f} s  {a.n/first:7,.0f} img/s   ratio {tv/first:.2f}x")
    print(f"  cache: {fc.path} ({fc.images_file.stat().st_size/2**20:,.0f} MB)")
    print(f"second run, both splits: {lookup:.2f} s listing {a.n:,} files and checking the cache (twice, once per split) + "
          f"{fill:.2f} s putting {fc.images_file.stat().st_size/2**20:,.0f} MB of pixels in memory = {second:.2f} s")
    print(f"  first run (decode + the same) / second run: {(first + second)/second:.1f}x; decode / cache lookup: {first/lookup:.1f}x; "
          f"torchvision's second run (it decodes again) / ours: {tv/second:.1f}x")
    from probing_sota.data import reason_kind
    bad_root = base/f'folder{a.n}_bad'
    if not (bad_root/'.done').exists():
        shutil.rmtree(bad_root, ignore_errors=True); shutil.copytree(root, bad_root, symlinks=True); n_bad = add_bad_files(bad_root)
        (bad_root/'.done').write_text(str(n_bad))
    n_bad = int((bad_root/'.done').read_text())
    firstb, _, _, fcb = ours_pass(bad_root, a.size, cache)
    tvb, errb = torchvision_pass(bad_root, a.size, workers)
    unread = fcb.files[fcb.files.unreadable]
    print(f"\nwith 1% bad files ({n_bad} unreadable of every kind, plus odd-but-readable and non-image files):")
    print(f"  torchvision: {'stops after ' + f'{tvb:.1f} s with ' + errb if errb else f'{tvb:.1f} s, no error'}")
    print(f"  probing_sota: {firstb:.1f} s, {len(fcb.files[fcb.files.row >= 0]):,} images read, {len(unread)} unreadable skipped, "
          f"{len(fcb.skipped) - len(unread)} non-image files skipped; reasons: " + ', '.join(f'{k} {v}' for k, v in unread.reason.map(reason_kind).value_counts().items()))
    if a.probe:
        s = a.probe_size; n_test = a.n//5
        print(f"\npeak RSS of a whole probe (stages 04-09, resnet18 at {s} px; test split {n_test:,} images = {n_test*s*s*3/2**20:,.0f} MB of pixels):")
        for budget in (None, a.budget):
            rss, secs = probe_peak_rss(root, s, budget, Path(tempfile.mkdtemp(dir=base)))
            print(f"  PROBING_SOTA_MAX_MEMORY={budget or '(unset: a quarter of RAM, the split is held whole)'}: peak RSS {rss:,.0f} MB, {secs:.0f} s")
    shutil.rmtree(cache, ignore_errors=True)

if __name__ == '__main__': main()
