"""The notebooks keep their outputs, so that they show their results wherever they are opened (GitHub, Colab, Quarto).

    python tools/notebooks.py run [NB ...]   # `make nbs`: execute in place, shrink the figures, clean, stamp the digest
    python tools/notebooks.py check [NB ...] # in `make test`: outputs present, from the current code, within the budget

A notebook's digest is the SHA-256 of the code its outputs came from: its own code cells and the package modules it
imports, followed through their `from .x import` lines. `check` recomputes it, so outputs left from older code fail the
tests until `make nbs` runs again. Cells that nbdev_test skips (`#| eval: false`, the `slow` and `cuda` flags of
settings.ini) are skipped here too, and keep no outputs."""
import argparse, ast, base64, hashlib, io, json, os, re, sys, time
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NBS, LIB = ROOT/'nbs', ROOT/'probing_sota'
KEY = 'probing_sota'  # the notebook metadata key (settings.ini's allowed_metadata_keys keeps it through nbdev_clean)
SKIP_TAG = 'skip-execution'  # nbclient's own tag for cells it leaves alone
BUDGET = 1_000_000  # bytes per notebook
BUDGETS = {'10_gallery.ipynb': 2_000_000,  # the gallery widget's state: its first page of images, and the detail view
           '12_report.ipynb': 2_500_000,  # the report itself, shown in the notebook with its figures inlined
           '15_pipeline.ipynb': 2_000_000}  # a probe's report, shown as the Probe object shows it
MAX_SIDE, BIG_PNG = 1200, 120_000  # figures wider than MAX_SIDE px are downscaled; PNGs above BIG_PNG bytes get a palette

def notebooks(names=None)->list[Path]:
    "The notebooks named (file names or paths), else all of nbs/ but the ones starting with _ or ."
    if names: return [p if (p := Path(n)).exists() else NBS/Path(n).name for n in names]
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))

def test_flags()->list[str]:
    "settings.ini's tst_flags, as nbdev reads them: cells flagged with one of them are skipped by nbdev_test (and here)."
    from nbdev.config import get_config
    return [f for f in (get_config(path=ROOT).get('tst_flags') or '').split('|') if f]

def skipped(cell, flags=None)->bool:
    "Does nbdev_test skip this code cell?"
    flags = test_flags() if flags is None else flags
    for line in cell.source.splitlines():
        if not line.startswith('#|'): continue
        d = line[2:].strip()
        if re.match(r'eval\s*:\s*false', d) or d.split()[:1] and d.split()[0] in flags: return True
    return False

def module_of(nb)->str|None:
    for c in nb.cells:
        if c.cell_type == 'code' and (m := re.search(r'^#\|\s*default_exp\s+(\S+)', c.source, re.M)): return m.group(1)
    return None

def imported_modules(nb, lib:Path=LIB)->set[str]:
    "The package modules the notebook's outputs depend on: its own, those it imports, and theirs in turn."
    found = set(re.findall(r'(?:from|import)\s+probing_sota\.(\w+)', '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')))
    if re.search(r'from\s+probing_sota\s+import|import\s+probing_sota\b(?!\.)', '\n'.join(c.source for c in nb.cells)):
        found |= {p.stem for p in lib.glob('*.py') if not p.stem.startswith('_')}
    if (own := module_of(nb)): found.add(own)
    todo, seen = list(found), set()
    while todo:
        m = todo.pop()
        if m in seen or not (lib/f'{m}.py').exists(): continue
        seen.add(m)
        todo += re.findall(r'^\s*from\s+\.(\w+)\s+import', (lib/f'{m}.py').read_text(), re.M)
    return seen

def digest(nb, lib:Path=LIB)->str:
    "SHA-256 of the notebook's code cells and of the package modules they use."
    h = hashlib.sha256()
    for c in nb.cells:
        if c.cell_type == 'code': h.update(c.source.encode() + b'\0')
    for m in sorted(imported_modules(nb, lib)): h.update(m.encode() + b'\0' + (lib/f'{m}.py').read_bytes() + b'\0')
    return h.hexdigest()

def shrink_png(b64:str)->str:
    "A PNG output at most MAX_SIDE wide, and with a 256-colour palette when it is still big (plots barely change)."
    from PIL import Image
    raw = base64.b64decode(b64)
    im = Image.open(io.BytesIO(raw))
    if im.width <= MAX_SIDE and len(raw) <= BIG_PNG: return b64
    im = im.convert('RGBA') if 'A' in im.getbands() else im.convert('RGB')
    if im.width > MAX_SIDE: im = im.resize((MAX_SIDE, round(im.height*MAX_SIDE/im.width)), Image.LANCZOS)
    buf = io.BytesIO(); im.save(buf, 'PNG', optimize=True)
    if buf.tell() > BIG_PNG:
        q = io.BytesIO(); im.quantize(256, method=Image.Quantize.FASTOCTREE if im.mode == 'RGBA' else Image.Quantize.MEDIANCUT).save(q, 'PNG', optimize=True)
        if q.tell() < buf.tell(): buf = q
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < len(raw) else b64

DATA_URI = re.compile(r'data:image/png;base64,([A-Za-z0-9+/=]+)')

def shrink_uris(text:str)->str:
    "The PNG data URIs in HTML (a report, a gallery page) shrunk like the figures."
    return DATA_URI.sub(lambda m: 'data:image/png;base64,' + shrink_png(m.group(1)), text)

def shrink_images(nb):
    "Every PNG the notebook stores, as a figure or inside HTML and widget state, within MAX_SIDE and BIG_PNG."
    for c in nb.cells:
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'image/png' in data: data['image/png'] = shrink_png(data['image/png'])
            if 'text/html' in data: data['text/html'] = shrink_uris(''.join(data['text/html']))
            if 'image/png' in o.get('metadata', {}): o['metadata']['image/png'].pop('width', None); o['metadata']['image/png'].pop('height', None)
    for m in widget_state(nb).values():
        for k, v in m.get('state', {}).items():
            if isinstance(v, str) and 'data:image/png' in v: m['state'][k] = shrink_uris(v)
    return nb

def widget_state(nb)->dict:
    return nb.metadata.get('widgets', {}).get('application/vnd.jupyter.widget-state+json', {}).get('state', {})

def prune_widgets(nb):
    """Keep the state of the widgets the outputs show and of the widgets they hold, not of every widget the kernel made
    (a test's gallery is never displayed, but its state would be stored too)."""
    state = widget_state(nb)
    if not state: return nb
    todo = [o['data']['application/vnd.jupyter.widget-view+json']['model_id'] for c in nb.cells for o in c.get('outputs', [])
            if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    keep = set()
    while todo:
        m = todo.pop()
        if m in keep or m not in state: continue
        keep.add(m); todo += re.findall(r'IPY_MODEL_([0-9a-f]+)', json.dumps(state[m]))
    for m in set(state) - keep: del state[m]
    return nb

def clean(nb, path:Path):
    "nbdev_clean's own cleaning, with this repository's settings (outputs kept: clear_all = False)."
    from nbdev.clean import clean_nb
    from nbdev.config import get_config
    cfg = get_config(path=ROOT)
    clean_nb(nb, False, cfg.get('allowed_metadata_keys', '').split(), cfg.get('allowed_cell_metadata_keys', '').split(), cfg.clean_ids)
    return nb

def finish(nb, path:Path):
    "An executed notebook made light and clean, stamped with the digest of its code, and written."
    prune_widgets(nb); shrink_images(nb); clean(nb, path)
    nb.metadata[KEY] = {'digest': digest(nb)}
    nbformat.write(nb, path)

def execute(path:Path, timeout:int=1800):
    "Run the notebook top to bottom in a fresh kernel (in nbs/), and write it back with its outputs and digest."
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    flags = test_flags()
    skip = [c for c in nb.cells if c.cell_type == 'code' and skipped(c, flags)]
    for c in skip: c.metadata.setdefault('tags', []).append(SKIP_TAG)
    t = time.time()
    from probing_sota.pipeline import kernel_manager_class  # IPC sockets, each kernel its own: notebooks may run side by side
    try: NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True, kernel_manager_class=kernel_manager_class(),
                        resources={'metadata': {'path': str(path.parent)}}).execute()
    finally:
        for c in skip:
            c.metadata['tags'].remove(SKIP_TAG); c.outputs = []
            if not c.metadata['tags']: del c.metadata['tags']
    finish(nb, path)
    print(f"nbs: {path.name}: {time.time()-t:.0f} s, {path.stat().st_size/1e6:.2f} MB", flush=True)

DRAWS = re.compile(r'\bplt\.(?:plot|imshow|subplots|figure|bar|hist|scatter)\b|\bplot_\w+\(|\b(?!save_)\w+_figure\(|\.imshow\(')
CLOSES = re.compile(r'\bplt\.close\(|\bsave_figure\(')  # a figure drawn to be saved or checked, not shown

def figure_cells(nb)->list[int]:
    "The code cells that draw (a figure must be among their outputs): demos calling matplotlib, a `plot_` or `_figure` function."
    flags = test_flags()
    return [i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and DRAWS.search(c.source) and not CLOSES.search(c.source)
            and not re.match(r'#\|\s*(export|exports|hide)\b', c.source) and not skipped(c, flags)]

def has_figure(cell)->bool:
    return any(k.startswith('image/') or k == 'application/vnd.jupyter.widget-view+json'
               for o in cell.get('outputs', []) for k in o.get('data', {}))

def docs_runs_alone(cell)->bool:
    """Does nbdev's docs build execute this cell without the cells before it, and fail on their names? It executes every
    cell that imports (nbdev's processors._do_eval), so a cell importing beside a demo's code runs that code alone. Only
    imports and guarded blocks (the Colab install) may stand beside an import outside the export cells."""
    if cell.cell_type != 'code': return False
    if re.search(r'^#\|\s*(export|exports|exporti|exec_doc|eval\s*:\s*false)\b|nbdev_export\(\)', cell.source, re.M): return False
    try: tree = ast.parse('\n'.join(l for l in cell.source.splitlines() if not l.lstrip().startswith(('%', '!'))))
    except SyntaxError: return False
    imports = (ast.Import, ast.ImportFrom)
    return any(isinstance(n, imports) for n in tree.body) and any(not isinstance(n, imports + (ast.If,)) for n in tree.body)

def problems(path:Path)->list[str]:
    "What is wrong with the notebook's stored outputs (empty: nothing)."
    nb = nbformat.read(path, as_version=4)
    outs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
    fix = f"run `make nbs NB={path.name}` and commit the notebook"
    if not any(c.cell_type == 'code' and c.source.strip() and not c.source.startswith('#| hide') for c in nb.cells): return []
    if not outs: return [f"{path.name} has no outputs: {fix}"]
    found = []
    if (stored := nb.metadata.get(KEY, {}).get('digest')) is None: found.append(f"{path.name} has no digest of the code its outputs came from: {fix}")
    elif stored != digest(nb): found.append(f"{path.name}'s outputs are from other code (its cells or the modules {sorted(imported_modules(nb))} changed since): {fix}")
    if errs := [o for o in outs if o.get('output_type') == 'error']: found.append(f"{path.name} stored an error ({errs[0].get('ename')}): {fix}")
    if blank := [i for i in figure_cells(nb) if not has_figure(nb.cells[i])]:
        found.append(f"{path.name}: cells {blank} draw but store no figure: {fix}")
    if mixed := [i for i, c in enumerate(nb.cells) if docs_runs_alone(c)]:
        found.append(f"{path.name}: cells {mixed} import beside other code, which nbdev's docs build runs without the cells "
                     "before them: move the imports to the notebook's import cell")
    if (size := path.stat().st_size) > (budget := BUDGETS.get(path.name, BUDGET)):
        found.append(f"{path.name} is {size/1e6:.2f} MB, over its budget of {budget/1e6:.1f} MB: fewer or smaller figures")
    return found

def run_all(paths:list[Path], jobs:int=1)->int:
    """Execute `paths`, `jobs` at a time (each in its own kernel). Above one job the kernels get one thread each: two
    kernels of two threads on two cores spin on each other. A failing notebook is named; the others still run."""
    from concurrent.futures import ThreadPoolExecutor
    threads = os.environ.get('OMP_NUM_THREADS')
    if jobs > 1: os.environ['OMP_NUM_THREADS'] = '1'  # the kernels inherit it
    def one(p):
        try: execute(p); return None
        except Exception as e: return f"{p.name}: {type(e).__name__}: {str(e)[-2000:]}"
    try:
        with ThreadPoolExecutor(max(1, jobs)) as pool: failed = [f for f in pool.map(one, paths) if f]
    finally:
        if threads is None: os.environ.pop('OMP_NUM_THREADS', None)
        else: os.environ['OMP_NUM_THREADS'] = threads
    for f in failed: print(f"nbs: failed: {f}", file=sys.stderr)
    return 1 if failed else 0

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('command', choices=['run', 'check']); ap.add_argument('nbs', nargs='*')
    ap.add_argument('--jobs', type=int, default=1, help='notebooks executed at a time, each kernel on one thread when above 1')
    a = ap.parse_intermixed_args(argv)  # `run --jobs 2 a.ipynb b.ipynb`
    paths = notebooks(a.nbs)
    if a.command == 'run': return run_all(paths, a.jobs)
    found = [m for p in paths for m in problems(p)]
    for m in found: print(f"nbs: {m}", file=sys.stderr)
    if not found: print(f"nbs: the outputs of {len(paths)} notebooks are from the current code, {sum(p.stat().st_size for p in paths)/1e6:.1f} MB in all")
    return 1 if found else 0

if __name__ == '__main__': sys.exit(main())
