"""The quickstart's training recipe, measured: each recipe fine-tunes the ImageNet EfficientNet-Lite0 on real
Fashion-MNIST with `train_stage` (as the pipeline does) and is scored on the whole 10k test set.

    python bench/quickstart_recipe.py [RECIPE ...] [--list] [--out /tmp/quickstart_recipe]

Prints one row per recipe (test accuracy, best validation accuracy, training seconds, images/s) and appends it to
OUT/recipes.csv, so a sweep can be run a few recipes at a time. Run it with nothing else busy: the seconds are the
budget the quickstart spends on this machine."""
import argparse, json, time
from pathlib import Path
import pandas as pd
from probing_sota.data import load_dataset
from probing_sota.evaluate import predict
from probing_sota.models import run_model
from probing_sota.train import train_stage

BASE = dict(dataset='fashion_mnist', model_name='efficientnet_lite0', weights='imagenet', strategy='last_block', epochs=2, lr=2e-3,
            optimizer='adamw', schedule='onecycle', batch_size=128, input_size=64, n_train=20_000, val_fraction=0.1,
            augment='default', seed=0, device='auto')  # the quickstart before issue 15; every recipe changes some of it
RECIPES = {  # name: changes to BASE
    'before': dict(strategy='last_block', epochs=2, lr=2e-3, batch_size=128, input_size=64, n_train=20_000),
    'last_block-60k-1ep': dict(strategy='last_block', epochs=1, lr=2e-3, input_size=64, n_train=None),
    'full-20k-2ep': dict(strategy='full', epochs=2, lr=2e-3, input_size=64, n_train=20_000),
    'full-32px-60k-1ep': dict(strategy='full', epochs=1, lr=2e-3, input_size=32, n_train=None),
    'full-32px-60k-2ep': dict(strategy='full', epochs=2, lr=2e-3, input_size=32, n_train=None),
    'prog-32x2-64x1-60k': dict(strategy='full', epochs=3, lr=2e-3, input_size=64, low_res_size=32, low_res_epochs=2, n_train=None),
    'prog-32x1-64x1-60k': dict(strategy='full', epochs=2, lr=2e-3, input_size=64, low_res_size=32, low_res_epochs=1, n_train=None),
    'prog-32x1-64x1-60k-lr3e-3': dict(strategy='full', epochs=2, lr=3e-3, input_size=64, low_res_size=32, low_res_epochs=1, n_train=None),
    'prog-32x1-64x1-60k-lr1e-3': dict(strategy='full', epochs=2, lr=1e-3, input_size=64, low_res_size=32, low_res_epochs=1, n_train=None),
    'prog-32x1-64x1-60k-bs256': dict(strategy='full', epochs=2, lr=3e-3, batch_size=256, input_size=64, low_res_size=32,
                                     low_res_epochs=1, n_train=None),
    'prog-32x1-64x1-60k-two_phase': dict(strategy='two_phase', switch_epoch=1, epochs=2, lr=2e-3, input_size=64,
                                         low_res_size=32, low_res_epochs=1, n_train=None),
    'prog-32x1-64x1-60k-last_block': dict(strategy='last_block', epochs=2, lr=2e-3, input_size=64, low_res_size=32,
                                          low_res_epochs=1, n_train=None),
    'prog-32x1-64x1-60k-contiguous': dict(strategy='full', epochs=2, lr=2e-3, input_size=64, low_res_size=32, low_res_epochs=1,
                                          n_train=None, channels_last=False),
    'prog-32x1-64x1-60k-compile': dict(strategy='full', epochs=2, lr=2e-3, input_size=64, low_res_size=32, low_res_epochs=1,
                                       n_train=None, compile=True),
    'cache-60k-2ep-lr3e-3': dict(strategy='last_block', augment='none', epochs=2, lr=3e-3, input_size=64, n_train=None),
    'cache-60k-3ep-lr3e-3': dict(strategy='last_block', augment='none', epochs=3, lr=3e-3, input_size=64, n_train=None),
    'cache-60k-2ep-lr5e-3': dict(strategy='last_block', augment='none', epochs=2, lr=5e-3, input_size=64, n_train=None),
    'cache-60k-3ep-lr3e-3-bs256': dict(strategy='last_block', augment='none', epochs=3, lr=3e-3, batch_size=256, input_size=64,
                                       n_train=None),
    'cache-60k-3ep-lr3e-3-56px': dict(strategy='last_block', augment='none', epochs=3, lr=3e-3, input_size=56, n_train=None),
    # the frozen-layer cache against running the frozen layers every epoch: the same recipe, the same images, on 20k of them
    'quickstart-20k-cached': dict(strategy='last_block', augment='none', epochs=2, lr=3e-3, input_size=56, n_train=20_000),
    'quickstart-20k-uncached': dict(strategy='last_block', augment='none', epochs=2, lr=3e-3, input_size=56, n_train=20_000,
                                    feature_cache=False),
    'quickstart': dict(strategy='last_block', augment='none', epochs=2, lr=3e-3, input_size=56, n_train=None),
    'prog-32x2-48x1-60k': dict(strategy='full', epochs=3, lr=2e-3, input_size=48, low_res_size=32, low_res_epochs=2, n_train=None),
}

def run_recipe(name:str, out:Path, test)->dict:
    params = {**BASE, **RECIPES[name]}
    t0 = time.perf_counter()
    summary = train_stage(out/name, **params, exist='overwrite', progress=False)
    wall = time.perf_counter() - t0
    model, info = run_model(out/name)
    acc = float((predict(model, test, info.transform())['probs'].argmax(-1).numpy() == test.labels).mean())
    log = pd.read_csv(out/name/'train_log.csv')
    return {'recipe': name, 'test_acc': round(acc, 4), 'best_val_acc': round(summary['best_val_acc'], 4),
            'train_seconds': summary['train_seconds'], 'stage_seconds': round(wall, 1),
            'images_per_s': round(float(log.images_per_s.mean()), 1), 'n_train': summary['n_train'],
            'params': json.dumps(RECIPES[name])}

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('recipes', nargs='*'); ap.add_argument('--list', action='store_true')
    ap.add_argument('--out', default='/tmp/quickstart_recipe')
    a = ap.parse_args()
    if a.list or not a.recipes:
        for k, v in RECIPES.items(): print(f'{k:34s} {v}')
        return
    unknown = [r for r in a.recipes if r not in RECIPES]
    if unknown: raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}: --list shows them")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    test = load_dataset('fashion_mnist', 'test')
    for name in a.recipes:
        row = run_recipe(name, out, test)
        print(' · '.join(f'{k} {v}' for k, v in row.items() if k != 'params'), flush=True)
        f = out/'recipes.csv'; pd.DataFrame([row]).to_csv(f, mode='a', header=not f.exists(), index=False)

if __name__ == '__main__': main()
