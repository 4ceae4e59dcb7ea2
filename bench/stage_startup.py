"""What a stage pays before and after its work: a kernel started cold (Python, ipykernel, the setup cells' imports, the
imports inside the stage's functions, and at the end the interpreter's exit) against a fork of the run's `KernelZygote`
(`pipeline.KernelZygote`, which imported every stage's modules once) — on the same notebooks, in one process, interleaved.

    python bench/stage_startup.py [--stages why,robustness] [--repeats 2]

For each stage notebook, a notebook of its set-up cells (those above the parameters), one cell with the imports its
module's functions make, and its parameters cell is run by papermill as the pipeline runs a stage: cold, then as a fork.
Prints seconds per stage both ways and their ratio, and the seconds the zygote took to import once for all the stages
(paid once, before the first stage)."""
import argparse, shutil, time
from pathlib import Path
import nbformat, pandas as pd
from probing_sota.core import scratch_dir
from probing_sota.pipeline import find_nbs, stage_table, stage_imports, KernelZygote, _execute

def startup_notebook(notebook:Path, d:Path)->Path:
    "The stage's set-up cells, then what the stage imports inside its functions, then its parameters cell."
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == 'code']
    first = next(i for i, c in enumerate(cells) if 'parameters' in c.metadata.get('tags', []))
    inner = '\n'.join(s for s in stage_imports(notebook) if not any(s in c.source for c in cells[:first]))
    extra = [nbformat.v4.new_code_cell(inner), nbformat.v4.new_code_cell('run_dir = None', metadata={'tags': ['parameters']})]
    f = d/notebook.name; nbformat.write(nbformat.v4.new_notebook(cells=[*cells[:first], *extra]), f); return f

def timed_run(f:Path, d:Path, cwd:str, zygote=None)->float:
    t = time.perf_counter(); _execute(str(f), d/'out.ipynb', {}, 'python3', cwd, zygote); return time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--stages', default=None, help='comma-separated stage names (default: all)')
    ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args()
    nbs = find_nbs(); table = stage_table(nbs, a.stages.split(',') if a.stages else None)
    d = scratch_dir('bench-startup'); rows = []
    try:
        files = {name: startup_notebook(Path(nb), d) for name, nb in zip(table.name, table.notebook)}
        t = time.perf_counter(); zygote = KernelZygote(list(files.values()), str(nbs))
        if not zygote.is_ready(600): raise SystemExit("the zygote did not start")
        once = time.perf_counter() - t
        for name, f in files.items():
            for r in range(a.repeats):
                cold, fork = timed_run(f, d, str(nbs)), timed_run(f, d, str(nbs), zygote)
                rows.append({'stage': name, 'repeat': r, 'cold s': round(cold, 2), 'fork s': round(fork, 2), 'cold/fork': round(cold/fork, 2)})
                print(rows[-1], flush=True)
        zygote.close()
    finally: shutil.rmtree(d, ignore_errors=True)
    df = pd.DataFrame(rows).groupby('stage', sort=False).median(numeric_only=True).drop(columns='repeat')
    print(df.to_string()); tot = df.sum()
    print(f"\nall {len(df)} stages: cold {tot['cold s']:.1f} s, forks {tot['fork s']:.1f} s of start and exit "
          f"(cold/fork {tot['cold s']/tot['fork s']:.1f}x); the zygote's imports, once before the first stage: {once:.1f} s")

if __name__ == '__main__': main()
