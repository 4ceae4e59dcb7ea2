"""Build the docs site without Quarto: one HTML page per notebook with a navigation sidebar, into _docs/.

    python tools/build_docs.py [--run runs/quickstart] [--out _docs]

The pages are what nbdev_docs would render under Quarto: nbdev_proc_nbs processes the notebooks (show_doc cells for
the exported definitions, hidden cells gone) and the pages show their stored outputs (`make nbs`), widget state
included; nothing is executed here, and notebooks whose outputs are missing or older than their code stop the build.
Each exported definition shows its signature with its parameters' comments and its docstring; its source is one click
away. The run's report and gallery (`make run`) are linked from every page.
JavaScript (require.js, the Jupyter widgets HTML manager, MathJax 3) is served from the site itself (fetched once with
npm into .docs-vendor/), so the pages work offline. Where Quarto is installed, `make docs` runs nbdev_docs instead."""
import argparse, configparser, re, shutil, subprocess, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT/'.docs-vendor'
NPM_PACKAGES = ['requirejs@2.3.7', '@jupyter-widgets/html-manager@1.0.13', 'mathjax@3.2.2']

sys.path.insert(0, str(ROOT/'tools'))  # tools/notebooks.py: the stored outputs' checks and the notebooks' modules

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

def processed(nbs:Path, proc:Path)->list[Path]:
    """nbdev_proc_nbs (the first half of nbdev_docs): the notebooks with their show_doc cells, their stored outputs, no
    hidden cells. nbdev reprocesses only notebooks newer than its cache folder, so a notebook written while another build
    ran can be missed: a notebook newer than its processed copy is touched and processed again."""
    exe = Path(sys.executable).parent/'nbdev_proc_nbs'
    srcs = notebooks(nbs)
    def stale(): return [p for p in srcs if not (proc/p.name).exists() or (proc/p.name).stat().st_mtime < p.stat().st_mtime]
    for attempt in range(2):
        r = subprocess.run([str(exe), '--path', str(nbs)], capture_output=True, text=True, cwd=ROOT)
        if r.returncode: raise DocsError(f"nbdev_proc_nbs failed: {r.stderr.strip()[-800:]}")
        if not (old := stale()): return [proc/p.name for p in srcs]
        for p in old: p.touch()
    raise DocsError(f"nbdev_proc_nbs left {[p.name for p in old]} out of date in {proc}: delete {proc} and build again.")

def check_outputs(srcs:list[Path]):
    "The pages show the notebooks' stored outputs: they must exist and come from the current code."
    import notebooks as N
    found = [m for p in srcs for m in N.problems(p)]
    if found: raise DocsError('the notebooks\' stored outputs are not ready:\n  ' + '\n  '.join(found))

FRONT = re.compile(r'^---\n(.*?)\n---', re.S)
DOC_LINK = re.compile(r'\]\((?:https?://[^)\s]*?/)?(\w+)\.html(#[\w.-]+)?\)')
SOURCE_LINK = re.compile(r'^\[source\]\(([^)]+)\)\{[^}]*\}\s*$', re.M)

def directives(src:str)->dict:
    "The cell's `#| key: value` lines ({'echo': 'false', 'hide': ''})."
    out = {}
    for l in src.splitlines():
        if m := re.match(r'#\|\s*([\w-]+)\s*:?\s*(.*)$', l): out[m.group(1)] = m.group(2).strip()
    return out

def page_meta(nb)->tuple[str, str]:
    "Title and description: from the frontmatter nbdev_proc_nbs writes, else the first `# heading`."
    import yaml
    for c in nb.cells:
        if c.cell_type == 'raw' and (m := FRONT.match(c.source)):
            fm = yaml.safe_load(m.group(1)) or {}
            if fm.get('title'): return str(fm['title']), str(fm.get('description') or '')
    return page_title(nb), ''

def source_of(name:str, modules:list)->str|None:
    "An exported definition's source, from the package modules (the page's own first)."
    import importlib, inspect
    for m in modules:
        try: obj = getattr(importlib.import_module(f'probing_sota.{m}'), name.split('.')[0])
        except (ImportError, AttributeError): continue
        for part in name.split('.')[1:]: obj = getattr(obj, part, obj)
        try: return inspect.getsource(obj)
        except (TypeError, OSError): return None
    return None

def source_details(code:str)->str:
    "The definition's source behind one click, highlighted, wrapping in its box."
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    return ('<details class="ps-source"><summary>source</summary><div class="highlight">'
            + highlight(code, PythonLexer(), HtmlFormatter(nowrap=True)).join(['<pre>', '</pre>']) + '</div></details>')

def doc_cell(cell, page_of:dict, modules:list):
    "A show_doc cell as markdown: the signature with its parameters' comments, the docstring, the source one click away."
    md = ''.join(o.get('data', {}).get('text/markdown', '') for o in cell.get('outputs', []))
    md = re.sub(r'^---\s*\n', '', md.lstrip())
    md = SOURCE_LINK.sub(lambda m: f'<a class="ps-gh" href="{m.group(1)}">on GitHub</a>', md)
    md = relink(md, page_of)
    name = (re.search(r'show_doc\(([\w.]+)', cell.source) or [None, None])[1]
    code = source_of(name, modules) if name else None
    return nbformat.v4.new_markdown_cell(md + ('\n\n' + source_details(code) if code else ''))

def relink(md:str, page_of:dict)->str:
    "Links to a notebook or to its page on the docs site point at this site's page."
    md = re.sub(r'\(([\w./-]+)\.ipynb(#[^)]*)?\)', lambda m: f'({m.group(1)}.html{m.group(2) or ""})', md)
    return DOC_LINK.sub(lambda m: f']({page_of.get(m.group(1), m.group(1))}.html{m.group(2) or ""})', md)

def for_readers(nb, page_of:dict|None=None, modules:list|None=None):
    """What nbdev's docs show: the title and description, prose, show_doc instead of exported code, demos with their
    outputs; no hidden cells, no directive lines, no tests (cells tagged to be left out of runs)."""
    page_of, modules = page_of or {}, modules or []
    title, desc = page_meta(nb)
    keep = [nbformat.v4.new_markdown_cell(f'# {title}' + (f'\n\n<p class="ps-lead">{desc}</p>' if desc else ''))]
    for c in nb.cells:
        tags, d = c.metadata.get('tags', []), (directives(c.source) if c.cell_type == 'code' else {})
        if c.cell_type == 'raw' or 'skip-in-run' in tags or 'remove' in tags: continue
        if c.cell_type == 'markdown':
            if 'AUTOGENERATED' in c.source or (c.source.startswith('# ') and c.source.splitlines()[0] == f'# {title}'): continue
            c.source = relink(c.source, page_of); keep.append(c); continue
        if 'hide' in d or d.get('include') == 'false' or 'export' in d or 'exports' in d: continue
        if d.get('output') == 'asis' and 'show_doc' in c.source: keep.append(doc_cell(c, page_of, modules)); continue
        c.source = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip()
        if d.get('echo') == 'false': c.metadata.setdefault('tags', []).append('ps-no-input')
        if not c.source and not c.get('outputs'): continue
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

def modules_of(srcs:list[Path])->dict:
    "Each notebook's exported module (its `default_exp`), by notebook name."
    import notebooks as N
    return {p.stem: m for p in srcs if (m := N.module_of(nbformat.read(p, as_version=4)))}

def build(nbs:Path=ROOT/'nbs', run:Path=ROOT/'runs/quickstart', out:Path=ROOT/'_docs')->list[Path]:
    """Build the site from the notebooks' stored outputs (`make nbs`) as nbdev_proc_nbs processes them; returns the pages.
    The run's report and gallery are linked from every page when `run` holds them."""
    from nbconvert import HTMLExporter
    nbs, run, out = Path(nbs), Path(run), Path(out)
    title, _ = site_title(nbs)
    srcs = notebooks(nbs)
    if not srcs: raise DocsError(f"No notebooks in {nbs}.")
    check_outputs(srcs)
    procs = processed(nbs, ROOT/'_proc')
    out.mkdir(parents=True, exist_ok=True)
    vendor(out/'static')
    run_links = copy_run(run, out) if run.is_dir() else []
    if not run_links: print(f"docs: no report or gallery in {run}: the pages link to none (`make run` makes them)")
    if (nbs/'images').is_dir(): shutil.copytree(nbs/'images', out/'images', dirs_exist_ok=True)  # figures the prose links to
    mods = modules_of(srcs)
    page_of = {re.sub(r'^\d+_', '', p.stem): p.stem for p in srcs}  # nbdev's page names drop the number
    books = []
    for src, proc in zip(srcs, procs):
        print(f"docs: {src.name}", flush=True)
        own = [mods[src.stem]] if src.stem in mods else []
        books.append((src, for_readers(nbformat.read(proc, as_version=4), page_of, own + [m for m in mods.values() if m not in own])))
    pages = [{'href': src.stem + '.html', 'title': ('Home' if src.stem == 'index' else f"{src.stem[:2]} · {page_meta(nb)[0]}")}
             for src, nb in books]
    ex = HTMLExporter(template_name='ps_site', extra_template_basedirs=[str(ROOT/'tools/docs_template')])
    ex.require_js_url = 'static/require.js'
    ex.widget_renderer_url = 'static/html-manager/embed-amd.js'
    ex.exclude_input_prompt = ex.exclude_output_prompt = True  # no In [14]: beside the code
    from nbconvert.preprocessors import TagRemovePreprocessor
    ex.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'ps-no-input'}), enabled=True)  # `#| echo: false`
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
    ap.add_argument('--out', default=str(ROOT/'_docs'))
    a = ap.parse_args(argv)
    try: build(Path(a.nbs), Path(a.run), Path(a.out))
    except DocsError as e:
        print(f"docs: {e}", file=sys.stderr); return 2
    return 0

if __name__ == '__main__': sys.exit(main())
