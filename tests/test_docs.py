"The docs site built without Quarto (tools/build_docs.py), checked in a real browser: pages, sidebar, widgets, images, offline."
import re, json, subprocess, sys
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_docs

@pytest.fixture(scope='module')
def site(tiny_run, tmp_path_factory):
    "The site from the notebooks' stored outputs, with the shared tiny run (stages 03-12) as the run its pages link to."
    out = tmp_path_factory.mktemp('docs')/'site'
    return out, build_docs.build(ROOT/'nbs', tiny_run, out)

def test_one_page_per_notebook_with_the_run(site):
    out, pages = site
    names = {p.stem for p in pages}
    assert names == {p.stem for p in (ROOT/'nbs').glob('*.ipynb')}
    html = (out/'10_gallery.html').read_text()
    assert 'application/vnd.jupyter.widget-state+json' in html  # the gallery widget's state is embedded
    assert 'cdn.jsdelivr' not in html and 'cdnjs' not in html and 'unpkg' not in html
    assert (out/'run/report.html').exists() and (out/'run/gallery.html').exists()
    assert 'Passed unknown' not in (out/'03_train.html').read_text() and '#| export' not in (out/'03_train.html').read_text()

def test_every_page_in_the_browser(site, browser):
    out, pages = site
    for f in pages:
        page = browser.new_page(); errors = []
        page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
        page.goto(f.as_uri(), wait_until='load')
        if f.stem == '10_gallery':  # the widgets render from the site's own JavaScript
            page.wait_for_selector('.widget-button', timeout=30_000)
            assert page.eval_on_selector_all('.ps-grid img, .widget-html img', 'els => els.length') > 0
        page.wait_for_timeout(300)
        links = page.eval_on_selector_all('.ps-nav a', 'els => els.map(e => e.getAttribute("href"))')
        assert len(links) >= len(pages) and all((out/l).exists() for l in links), (f.name, links)
        widths = page.eval_on_selector_all('img', 'els => els.map(e => e.naturalWidth)')
        assert all(w > 0 for w in widths), (f.name, widths)
        assert not errors, (f.name, errors)
        page.close()
    page = browser.new_page(); page.goto((out/'index.html').as_uri())
    page.click('.ps-nav a[href="run/report.html"]'); page.wait_for_load_state('load')
    assert page.url.endswith('run/report.html') and page.eval_on_selector_all('img', 'els => els.length') > 0
    page.close()

def test_pages_read_like_nbdev_with_the_stored_figures(site):
    "Each definition as show_doc renders it (source behind a click, no prompts), and every figure a notebook stores on its page."
    import notebooks as N
    out, _ = site
    train = (out/'03_train.html').read_text()
    assert 'id="train_stage"' in train and 'the run directory' in train and '<details class="ps-source">' in train
    box = train.split('id="train_stage"', 1)[1].split('<details class="ps-source">', 1)[1].split('</details>', 1)[0]  # one click away
    assert 'train_stage' in box and re.sub(r'<[^>]+>', '', box).count('def train_stage(') == 1
    for nb_path in sorted((ROOT/'nbs').glob('[0-9][0-9]_*.ipynb')):
        html, nb = (out/f'{nb_path.stem}.html').read_text(), nbformat.read(nb_path, as_version=4)
        assert 'In&nbsp;[' not in html, nb_path.name
        if nb_path.stem != '15_pipeline':  # 14's outputs list notebook cells, directives and all
            assert '#| export' not in html and '#| hide' not in html, nb_path.name
        shown = [i for i in N.figure_cells(nb) if 'skip-in-run' not in nb.cells[i].metadata.get('tags', [])]
        assert html.count('src="data:image/png;base64,') >= len(shown), nb_path.name
    assert all((out/f'{n}.html').read_text().count('data:image/png') > 0 for n in ['04_evaluate', '06_gradcam', '07_why', '08_robustness'])

def test_stale_or_missing_outputs_stop_the_build(tmp_path):
    nbs = tmp_path/'nbs'; nbs.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Unrun'), nbformat.v4.new_code_cell('1 + 1')])
    nbformat.write(nb, nbs/'00_unrun.ipynb')
    with pytest.raises(build_docs.DocsError, match=r'00_unrun.ipynb has no outputs: run `make nbs NB=00_unrun.ipynb`'):
        build_docs.build(nbs, tmp_path/'run', tmp_path/'out')
    assert not (tmp_path/'out').exists()

def test_missing_quarto_settings(tmp_path, capsys):
    title, cfg = build_docs.site_title(tmp_path)
    assert title == 'probing_sota' and cfg == {}  # the title from settings.ini
    assert '_quarto.yml is missing: using the defaults' in capsys.readouterr().out

def test_quarto_prerender_runs_without_quarto():
    "nbdev_docs = nbdev_proc_nbs + quarto render: the first half runs here (it executes the export, import and show_doc cells)."
    r = subprocess.run([str(Path(sys.executable).parent/'nbdev_proc_nbs')], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    side = re.findall(r'^\s+- (\S+)$', (ROOT/'_proc/sidebar.yml').read_text(), re.M)  # custom_sidebar: nbs/sidebar.yml
    assert side == ['index.ipynb'] + sorted(p.name for p in (ROOT/'nbs').glob('[0-9][0-9]_*.ipynb'))
    docs = json.dumps(nbformat.read(ROOT/'_proc/03_train.ipynb', as_version=4).cells)
    assert '### train_stage' in docs and '# the run directory' in docs  # show_doc with the parameters' comments
