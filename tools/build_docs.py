"""Build the docs site without Quarto: one HTML page per notebook with a navigation sidebar, into _docs/.

    python tools/build_docs.py [--run runs/quickstart] [--out _docs] [--no-execute]

Stage notebooks (03-11) are shown as the pipeline executed them for the run (real outputs, widget state included);
the others (index, 00-02, 12) are executed here, and a notebook that fails stops the build with its name and cell.
JavaScript (require.js, the Jupyter widgets HTML manager, MathJax 3) is served from the site itself (fetched once with
npm into .docs-vendor/), so the pages work offline. Where Quarto is installed, `make docs` runs nbdev_docs instead."""
import argparse, base64, configparser, io, re, shutil, subprocess, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT/'.docs-vendor'
NPM_PACKAGES = ['requirejs@2.3.7', '@jupyter-widgets/html-manager@1.0.13', 'mathjax@3.2.2']
STAGE = re.compile(r'^(0[3-9]|1[01])_')

class DocsError(Exception): pass

def site_title(nbs:Path)->tuple[str, dict]:
    "The site title and the Quarto settings (defaults, said out loud, when _quarto.yml is missing)."
    import yaml
    q = nbs/'_quarto.yml'
    if not q.exists():
        print(f"docs: {q} is missing: using the defaults (title from settings.ini, a sidebar of the notebooks in order).")
        cfg = {}
    else: cfg = yaml.safe_load(q.read_text()) or {}
    ini = configparser.ConfigParser(); ini.read(ROOT/'settings.ini')
    title = (cfg.get('website') or {}).get('title') or ini.get('DEFAULT', 'title', fallback='Documentation')
    return title, cfg

def page_title(nb)->str:
    for c in nb.cells:
        if c.cell_type == 'markdown' and (m := re.search(r'^#\s+(.+)$', c.source, re.M)): return m.group(1).strip()
    return 'Untitled'

def notebooks(nbs:Path)->list[Path]:
    "index first, then the numbered notebooks in order."
    found = sorted(p for p in nbs.glob('[0-9][0-9]_*.ipynb'))
    return ([nbs/'index.ipynb'] if (nbs/'index.ipynb').exists() else []) + found

def executed(src:Path, run:Path, execute:bool, timeout:int=1200):
    "The notebook with outputs: the run's executed copy for a stage, else executed here (or as is, without --execute)."
    if STAGE.match(src.name):
        copy = run/'notebooks'/src.name
        if not copy.exists(): raise DocsError(f"{copy} is missing: run the pipeline first (`make run`, or probing-sota run --name {run.name}).")
        return nbformat.read(copy, as_version=4)
    nb = nbformat.read(src, as_version=4)
    if not execute: return nb
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    try: NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(src.parent)}}).execute()
    except CellExecutionError as e:
        cell = next((i for i, c in enumerate(nb.cells) if any(o.get('output_type') == 'error' for o in c.get('outputs', []))), '?')
        raise DocsError(f"{src} failed to execute (cell {cell}): {str(e).strip().splitlines()[-1][:300]}. "
                        f"Fix it (nbdev_test --path {src.relative_to(ROOT) if src.is_relative_to(ROOT) else src}) and build again.") from None
    return nb

def compress_images(nb, max_side:int=1400, min_bytes:int=150_000):
    "Large PNG outputs become JPEG (quality 85) at most max_side wide: the site stays small, the figures stay sharp."
    from PIL import Image
    for c in nb.cells:
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'image/png' not in data or len(data['image/png']) < min_bytes*4/3: continue
            im = Image.open(io.BytesIO(base64.b64decode(data['image/png']))).convert('RGB')
            if im.width > max_side: im = im.resize((max_side, round(im.height*max_side/im.width)), Image.LANCZOS)
            buf = io.BytesIO(); im.save(buf, 'JPEG', quality=85, optimize=True)
            del data['image/png']; data['image/jpeg'] = base64.b64encode(buf.getvalue()).decode()
    return nb

def for_readers(nb):
    "What nbdev's docs show: no hidden cells, no directive lines, no cells tagged to be left out of runs."
    keep = []
    for c in nb.cells:
        tags = c.metadata.get('tags', [])
        if 'skip-in-run' in tags or 'remove' in tags: continue
        if c.cell_type == 'code':
            lines = c.source.splitlines()
            if any(re.match(r'#\|\s*hide\b', l) for l in lines): continue
            c.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if not c.source and not c.get('outputs'): continue
        if c.cell_type == 'markdown':  # links between notebooks point at their pages
            c.source = re.sub(r'\(([\w./-]+)\.ipynb(#[^)]*)?\)', lambda m: f'({m.group(1)}.html{m.group(2) or ""})', c.source)
        keep.append(c)
    nb.cells = keep
    return nb

def vendor(static:Path):
    "require.js, the widgets HTML manager and MathJax into static/, from npm (once, cached in .docs-vendor/)."
    mods = VENDOR/'node_modules'
    if not (mods/'@jupyter-widgets/html-manager/dist/embed-amd.js').exists():
        if not shutil.which('npm'):
            raise DocsError("npm is needed once to fetch the widget and MathJax JavaScript: `apt-get install npm` (make docs does it as root).")
        VENDOR.mkdir(exist_ok=True)
        r = subprocess.run(['npm', 'install', '--prefix', str(VENDOR), '--no-audit', '--no-fund', '--silent', *NPM_PACKAGES],
                           capture_output=True, text=True)
        if r.returncode: raise DocsError(f"npm install failed: {r.stderr.strip()[-500:]}")
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy(mods/'requirejs/require.js', static/'require.js')
    hm = static/'html-manager'; hm.mkdir(exist_ok=True)
    for f in (mods/'@jupyter-widgets/html-manager/dist').iterdir():
        if f.name == 'embed-amd.js' or f.suffix in ('.woff', '.woff2', '.ttf', '.eot', '.svg'): shutil.copy(f, hm/f.name)
    mj = static/'mathjax'; shutil.rmtree(mj, ignore_errors=True)
    src = mods/'mathjax/es5'
    for rel in ['tex-chtml.js', 'output/chtml/fonts', 'input/tex/extensions', 'ui', 'a11y', 'sre']:
        s = src/rel
        if s.is_dir(): shutil.copytree(s, mj/rel)
        elif s.exists(): (mj/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy(s, mj/rel)

def copy_run(run:Path, out:Path)->list:
    "The run's report and gallery, reachable from every page."
    links = []
    for name, title in [('report.html', "the run's report"), ('gallery.html', "the run's gallery")]:
        if (run/name).exists():
            (out/'run').mkdir(parents=True, exist_ok=True); shutil.copy(run/name, out/'run'/name); links.append((title, f'run/{name}'))
    return links

def build(nbs:Path=ROOT/'nbs', run:Path=ROOT/'runs/quickstart', out:Path=ROOT/'_docs', execute:bool=True)->list[Path]:
    "Build the site; returns the pages written."
    from nbconvert import HTMLExporter
    nbs, run, out = Path(nbs), Path(run), Path(out)
    title, _ = site_title(nbs)
    srcs = notebooks(nbs)
    if not srcs: raise DocsError(f"No notebooks in {nbs}.")
    if not run.is_dir(): raise DocsError(f"{run} does not exist: run the pipeline first (`make run`).")
    out.mkdir(parents=True, exist_ok=True)
    vendor(out/'static')
    run_links = copy_run(run, out)
    if (nbs/'images').is_dir(): shutil.copytree(nbs/'images', out/'images', dirs_exist_ok=True)  # figures the prose links to
    books = []
    for src in srcs:
        print(f"docs: {src.name}", flush=True)
        books.append((src, for_readers(compress_images(executed(src, run, execute)))))
    pages = [{'href': src.stem + '.html', 'title': ('Home' if src.stem == 'index' else f"{src.stem[:2]} · {page_title(nb)}")}
             for src, nb in books]
    ex = HTMLExporter(template_name='ps_site', extra_template_basedirs=[str(ROOT/'tools/docs_template')])
    ex.require_js_url = 'static/require.js'
    ex.widget_renderer_url = 'static/html-manager/embed-amd.js'
    written = []
    for (src, nb), page in zip(books, pages):
        html, _ = ex.from_notebook_node(nb, resources={'site_root': '', 'site_title': title, 'site_pages': pages,
                                                       'page_href': page['href'], 'run_links': run_links, 'run_name': run.name})
        f = out/page['href']; f.write_text(html); written.append(f)
    print(f"docs: {len(written)} pages in {out} (open {out/'index.html'})")
    return written

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--nbs', default=str(ROOT/'nbs')); ap.add_argument('--run', default=str(ROOT/'runs/quickstart'))
    ap.add_argument('--out', default=str(ROOT/'_docs')); ap.add_argument('--no-execute', action='store_true')
    a = ap.parse_args(argv)
    try: build(Path(a.nbs), Path(a.run), Path(a.out), not a.no_execute)
    except DocsError as e:
        print(f"docs: {e}", file=sys.stderr); return 2
    return 0

if __name__ == '__main__': sys.exit(main())
