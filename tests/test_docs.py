"The docs site built without Quarto (tools/build_docs.py), checked in a real browser: pages, sidebar, widgets, images, offline."
import json, subprocess, sys
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_docs
CHROMIUM = '/usr/bin/chromium'
EXE = Path(sys.executable).parent/'probing-sota'

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "A tiny run through the pipeline, then the site from it (notebooks other than the stages shown unexecuted, for speed)."
    tmp = tmp_path_factory.mktemp('docs')
    r = subprocess.run([str(EXE), 'run', '--runs', str(tmp), '--name', 'tiny', '--preset', 'tiny', '-p', 'device=cpu',
                        '-p', 'train.n_train=128', '-p', 'gradcam.max_images=6', '-p', 'gallery.max_per_set=12',
                        '-p', 'baselines.n_train=300', '-p', 'baselines.cnn_epochs=1'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp/'site'
    pages = build_docs.build(ROOT/'nbs', tmp/'tiny', out, execute=False)
    return out, pages

def test_one_page_per_notebook_with_the_run(site):
    out, pages = site
    names = {p.stem for p in pages}
    assert names == {p.stem for p in (ROOT/'nbs').glob('*.ipynb')}
    html = (out/'09_gallery.html').read_text()
    assert 'application/vnd.jupyter.widget-state+json' in html  # the gallery widget's state is embedded
    assert 'cdn.jsdelivr' not in html and 'cdnjs' not in html and 'unpkg' not in html
    assert (out/'run/report.html').exists() and (out/'run/gallery.html').exists()
    assert 'Passed unknown' not in (out/'03_train.html').read_text() and '#| export' not in (out/'03_train.html').read_text()

@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason='needs Debian chromium (make test installs it as root)')
def test_every_page_in_the_browser(site):
    from playwright.sync_api import sync_playwright
    out, pages = site
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox', '--disable-gpu', '--disable-background-networking'])
        try:
            for f in pages:
                page = b.new_page(); errors = []
                page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
                page.on('pageerror', lambda e: errors.append(str(e)))
                page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
                page.goto(f.as_uri(), wait_until='load')
                if f.stem == '09_gallery':  # the widgets render from the site's own JavaScript
                    page.wait_for_selector('.widget-button', timeout=30_000)
                    assert page.eval_on_selector_all('.ps-grid img, .widget-html img', 'els => els.length') > 0
                page.wait_for_timeout(300)
                links = page.eval_on_selector_all('.ps-nav a', 'els => els.map(e => e.getAttribute("href"))')
                assert len(links) >= len(pages) and all((out/l).exists() for l in links), (f.name, links)
                widths = page.eval_on_selector_all('img', 'els => els.map(e => e.naturalWidth)')
                assert all(w > 0 for w in widths), (f.name, widths)
                assert not errors, (f.name, errors)
                page.close()
            page = b.new_page(); page.goto((out/'index.html').as_uri())
            page.click('.ps-nav a[href="run/report.html"]'); page.wait_for_load_state('load')
            assert page.url.endswith('run/report.html') and page.eval_on_selector_all('img', 'els => els.length') > 0
        finally: b.close()

def test_a_notebook_that_fails_stops_the_build(tmp_path):
    nbs = tmp_path/'nbs'; nbs.mkdir(); (tmp_path/'run').mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Broken'), nbformat.v4.new_code_cell('1/0')])
    nbformat.write(nb, nbs/'00_broken.ipynb')
    with pytest.raises(build_docs.DocsError, match=r'00_broken.ipynb failed to execute \(cell 1\).*ZeroDivisionError'):
        build_docs.build(nbs, tmp_path/'run', tmp_path/'out')
    assert not (tmp_path/'out/00_broken.html').exists()

def test_missing_quarto_settings_and_run(tmp_path, capsys):
    nbs = tmp_path/'nbs'; nbs.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Fine')]), nbs/'00_fine.ipynb')
    with pytest.raises(build_docs.DocsError, match='make run'): build_docs.build(nbs, tmp_path/'norun', tmp_path/'out')
    assert '_quarto.yml is missing: using the defaults' in capsys.readouterr().out
    (tmp_path/'run').mkdir()
    pages = build_docs.build(nbs, tmp_path/'run', tmp_path/'out')
    assert [p.name for p in pages] == ['00_fine.html'] and 'probing_sota' in pages[0].read_text()  # the title from settings.ini

def test_quarto_prerender_runs_without_quarto():
    "nbdev_docs = nbdev_proc_nbs + quarto render: the first half runs here (it executes the export, import and show_doc cells)."
    r = subprocess.run([str(Path(sys.executable).parent/'nbdev_proc_nbs')], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    side = (ROOT/'_proc/sidebar.yml').read_text()
    assert all(f'- {p.name}' in side for p in (ROOT/'nbs').glob('[0-9][0-9]_*.ipynb')) and '- index.ipynb' in side
    docs = json.dumps(nbformat.read(ROOT/'_proc/03_train.ipynb', as_version=4).cells)
    assert '### train_stage' in docs and '# the run directory' in docs  # show_doc with the parameters' comments
