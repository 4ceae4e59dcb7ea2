"""What a stage pays before its work: a kernel started cold (Python, ipykernel, the setup cells' imports, the imports inside
the stage's functions) against a warm kernel (`pipeline.WarmKernel`,
started while the previous stage ran) — on the same notebooks, in one process, one after the other.

    python bench/stage_startup.py [--stages why,robustness] [--repeats 2] [--busy 0]

For each stage notebook, a notebook of its set-up cells (those above the parameters), one cell with the imports its
module's functions make, is run by papermill as the pipeline runs a stage: cold, then with a warm
kernel that was given the time the previous stage would have given it. `--busy N` keeps N processes spinning meanwhile,
as a stage keeps the cores busy while the next kernel warms. Prints seconds per stage both ways, the ratio, and the CPU
seconds the warm process spent ahead (paid beside the previous stage, not before this one)."""
import argparse, multiprocessing as mp, os, resource, shutil, time
from pathlib import Path
import nbformat, pandas as pd
from probing_sota.core import scratch_dir
from probing_sota.pipeline import find_nbs, stage_table, stage_imports, WarmKernel, _execute

def startup_notebook(notebook:Path, d:Path)->Path:
    "The stage's set-up cells, then what the stage imports inside its functions, then its parameters cell."
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == 'code']
    first = next(i for i, c in enumerate(cells) if 'parameters' in c.metadata.get('tags', []))
    inner = '\n'.join(s for s in stage_imports(notebook) if not any(s in c.source for c in cells[:first]))
    extra = [nbformat.v4.new_code_cell(inner), nbformat.v4.new_code_cell('run_dir = None', metadata={'tags': ['parameters']})]
    f = d/notebook.name; nbformat.write(nbformat.v4.new_notebook(cells=[*cells[:first], *extra]), f); return f

def spin(stop):
    while not stop.is_set(): pass

def children_cpu()->float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN); return r.ru_utime + r.ru_stime

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--stages', default=None, help='comma-separated stage names (default: evaluate onward)')
    ap.add_argument('--repeats', type=int, default=2); ap.add_argument('--busy', type=int, default=0)
    a = ap.parse_args()
    nbs = find_nbs(); table = stage_table(nbs)
    names = a.stages.split(',') if a.stages else [n for n in table.name if n != 'train']
    d = scratch_dir('bench-startup'); rows = []
    stop = mp.Event(); busy = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(a.busy)]
    for p in busy: p.start()
    try:
        for name in names:
            nb = Path(table.set_index('name').notebook[name]); f = startup_notebook(nb, d)
            for r in range(a.repeats):
                t = time.perf_counter(); _execute(str(f), d/'cold.ipynb', {}, 'python3', str(nbs)); cold = time.perf_counter() - t
                warm = WarmKernel(f, str(nbs)); c0 = children_cpu()
                warm.is_ready(600); ahead = time.perf_counter()  # the previous stage's time: the warm-up is done
                t = time.perf_counter(); _execute(str(f), d/'warm.ipynb', {}, 'python3', str(nbs), warm); hot = time.perf_counter() - t
                rows.append({'stage': name, 'repeat': r, 'cold s': round(cold, 2), 'warm s': round(hot, 2),
                             'cold/warm': round(cold/hot, 2), 'warm-up CPU s (ahead)': round(children_cpu() - c0, 2)})
                print(rows[-1], flush=True)
    finally:
        stop.set(); [p.join() for p in busy]; shutil.rmtree(d, ignore_errors=True)
    df = pd.DataFrame(rows).groupby('stage', sort=False).median(numeric_only=True).drop(columns='repeat')
    print(df.to_string()); tot = df.sum()
    print(f"\nall {len(df)} stages: cold {tot['cold s']:.1f} s, warm {tot['warm s']:.1f} s before their work "
          f"(cold/warm {tot['cold s']/tot['warm s']:.1f}x); the warm processes spent {tot['warm-up CPU s (ahead)']:.1f} CPU s ahead")

if __name__ == '__main__': main()
