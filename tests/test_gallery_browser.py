"The gallery in a real browser: headless Chromium driven by Playwright, against gallery.html and the live widget (Voila)."
import os, re, shutil, socket, subprocess, sys, time, json
from pathlib import Path
import pandas as pd, pytest, nbformat

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason='needs Debian chromium (make test installs it as root)')
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking']

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    from probing_sota.train import train_stage
    from probing_sota.evaluate import evaluate_stage
    from probing_sota.hard import hard_stage
    from probing_sota.gallery import export_gallery_html
    run = tmp_path_factory.mktemp('g')/'run'
    train_stage(run, dataset='synthetic', epochs=1, lr=3e-3, input_size=32, n_train=128, batch_size=32, progress=False)
    evaluate_stage(run, device='cpu'); hard_stage(run, top_k=20)
    export_gallery_html(run)
    return run

@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()

def watch(page):
    errors = []
    page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
    return errors

def visible(page):
    return page.eval_on_selector_all('.ps-tile', "els => els.filter(e => e.offsetParent !== null).map(e => [e.dataset.true, e.dataset.pred])")

def off_diagonal_pair(run):
    t = pd.read_csv(run/'hard/misclassified.csv')
    return int(t.label.iloc[0]), int(t.pred.iloc[0])

def test_static_gallery(run, browser):
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery.html').as_uri())
    all_tiles = visible(page)
    assert len(all_tiles) == len(pd.read_csv(run/'hard/hard_examples.csv')) > 0
    assert page.eval_on_selector_all('.ps-tile img', 'els => els.every(e => e.complete && e.naturalWidth > 0)')
    page.select_option('#ps-set', 'misclassified')
    assert len(visible(page)) == len(pd.read_csv(run/'hard/misclassified.csv'))
    t, p = off_diagonal_pair(run)
    page.click(f'td.ps-cell[data-true="{t}"][data-pred="{p}"]')
    shown = visible(page)
    assert shown and all(s == [str(t), str(p)] for s in shown)
    page.select_option('#ps-pred', str(t))  # true == predicted within 'misclassified': nothing
    assert visible(page) == [] and page.is_visible('#ps-none')
    assert errors == [], errors

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_live_widget_in_voila(run, browser, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"from probing_sota.gallery import Gallery\nGallery(r'{run}', page_size=12)")])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    nbformat.write(nb, tmp_path/'gallery.ipynb')
    port = free_port(); voila = shutil.which('voila', path=str(Path(sys.executable).parent)) or 'voila'
    proc = subprocess.Popen([voila, 'gallery.ipynb', '--no-browser', f'--port={port}', '--Voila.ip=127.0.0.1'],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):  # wait for the server to listen
            try: socket.create_connection(('127.0.0.1', port), timeout=1).close(); break
            except OSError: time.sleep(0.5)
        page = browser.new_page(); errors = watch(page)
        page.goto(f'http://127.0.0.1:{port}/', timeout=120_000, wait_until='domcontentloaded')
        page.wait_for_selector('.ps-tile', timeout=120_000)
        n_hard = len(pd.read_csv(run/'hard/hard_examples.csv'))
        assert len(visible(page)) == min(12, n_hard)
        t, p = off_diagonal_pair(run)
        page.click(f'.ps-cm-{t}-{p}')
        page.wait_for_function(f"""() => {{ const ts = [...document.querySelectorAll('.ps-tile')];
            return ts.length > 0 && ts.every(e => e.dataset.true === '{t}' && e.dataset.pred === '{p}'); }}""", timeout=60_000)
        page.screenshot(path=str(tmp_path/'voila.png'))
        # Voila's own page template links Font Awesome from a CDN; offline those two requests fail. Nothing else may.
        ours = [e for e in errors if 'fontawesome' not in e and 'ERR_NAME_NOT_RESOLVED' not in e]
        assert ours == [], errors
    finally:
        proc.terminate(); proc.wait(10)
