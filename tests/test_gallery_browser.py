"The gallery in a real browser: headless Chromium driven by Playwright, against gallery.html and the live widget (Voila)."
import os, re, shutil, socket, subprocess, sys, time, json
from pathlib import Path
import pandas as pd, pytest, nbformat

from conftest import CHROMIUM, NO_CHROMIUM, copy_run

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)
WHY_TABLES = ['hard/label_issues.csv', 'hard/neighbours.csv', 'hard/slices.csv', 'hard/slice_members.csv', 'hard/why_summary.json',
              'hard/diagnosis.csv']  # and 09's, which reads 07's

@pytest.fixture(scope='module')
def run(tiny_run, tmp_path_factory):
    """The shared tiny run (stages 03-12), copied: `gallery_without_07.html` exported from a copy without stage 07's (and 09's) tables,
    `gallery.html` exported again (every hard example) after two planted label issues."""
    from probing_sota.gallery import export_gallery_html
    tmp = tmp_path_factory.mktemp('g'); run = copy_run(tiny_run, tmp/'run')
    export_gallery_html(copy_run(tiny_run, tmp/'before_07', drop=WHY_TABLES), out=run/'gallery_without_07.html')
    # cleanlab may flag no test example of so small a run: two more flagged rows, as 07 writes them, keep the tests honest
    li, hard = pd.read_csv(run/'hard/label_issues.csv'), pd.read_csv(run/'hard/hard_examples.csv')
    new = hard[~hard['index'].isin(li[li.split == 'test']['index'])].head(2)
    planted = pd.DataFrame({'index': new['index'], 'split': 'test', 'given_label': new.label, 'suggested_label': new.pred,
                            'score': 0.0, 'method': 'planted by the browser test'})
    pd.concat([li, planted]).to_csv(run/'hard/label_issues.csv', index=False)
    export_gallery_html(run)
    return run

def watch(page):
    errors = []
    page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
    return errors

def visible(page):
    return page.eval_on_selector_all('.ps-tile', "els => els.filter(e => e.offsetParent !== null).map(e => [e.dataset.true, e.dataset.pred])")

def visible_index(page):
    return set(page.eval_on_selector_all('.ps-grid .ps-tile',
                                         "els => els.filter(e => e.offsetParent !== null).map(e => +e.dataset.index)"))

def loaded(selector):
    "A page function: every image under `selector` has loaded."
    return f"() => [...document.querySelectorAll('{selector}')].every(e => e.complete && e.naturalWidth > 0)"

def classes(run): return pd.read_csv(run/'class_names.csv').name.tolist()
def hard_index(run): return set(pd.read_csv(run/'hard/hard_examples.csv')['index'])
def flagged(run):
    "The hard test examples flagged in label_issues.csv, with the class suggested."
    li = pd.read_csv(run/'hard/label_issues.csv'); li = li[(li.split == 'test') & li['index'].isin(hard_index(run))]
    return dict(zip(li['index'], li.suggested_label))

def off_diagonal_pair(run):
    t = pd.read_csv(run/'hard/misclassified.csv')
    return int(t.label.iloc[0]), int(t.pred.iloc[0])

def test_static_gallery(run, browser):
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery.html').as_uri())
    all_tiles = visible(page)
    assert len(all_tiles) == len(pd.read_csv(run/'hard/hard_examples.csv')) > 0
    page.wait_for_function(loaded('.ps-tile img'))
    page.select_option('#ps-set', 'misclassified')
    assert len(visible(page)) == len(pd.read_csv(run/'hard/misclassified.csv'))
    t, p = off_diagonal_pair(run)
    page.click(f'td.ps-cell[data-true="{t}"][data-pred="{p}"]')
    shown = visible(page)
    assert shown and all(s == [str(t), str(p)] for s in shown)
    page.select_option('#ps-pred', str(t))  # true == predicted within 'misclassified': nothing
    assert visible(page) == [] and page.is_visible('#ps-none')
    assert errors == [], errors

def test_static_confusion_labels(run, browser):
    page = browser.new_page(); page.goto((run/'gallery.html').as_uri())
    pred = page.eval_on_selector_all('th.ps-cm-label[data-axis="pred"]', 'els => els.map(e => e.title)')
    true = page.eval_on_selector_all('th.ps-cm-label[data-axis="true"]', 'els => els.map(e => e.textContent)')
    assert pred == [f'predicted {c}' for c in classes(run)] and true == classes(run)

def test_label_issue_badges(run, browser):
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery.html').as_uri())
    fl, names = flagged(run), classes(run)
    assert len(fl) >= 2
    badges = dict(page.eval_on_selector_all('.ps-grid .ps-tile', """els => els.filter(e => e.querySelector('.ps-issue'))
        .map(e => [+e.dataset.index, e.querySelector('.ps-issue').textContent])"""))
    assert badges == {i: f'label issue? → {names[c]}' for i, c in fl.items()}
    assert page.is_visible(f'.ps-tile[data-index="{next(iter(fl))}"] .ps-issue')
    page.select_option('#ps-set', 'label issues')
    assert visible_index(page) == set(fl)
    assert page.text_content('#ps-count') == f'{len(fl)} examples'
    assert errors == [], errors

def test_slice_sets(run, browser):
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery.html').as_uri())
    sl, members, hard = pd.read_csv(run/'hard/slices.csv'), pd.read_csv(run/'hard/slice_members.csv'), hard_index(run)
    options = page.eval_on_selector_all('#ps-set option', 'els => els.map(e => [e.value, e.textContent])')
    assert [v for v, _ in options if v.startswith('slice ')] == [f'slice {k}' for k in sl.slice]
    text = dict(options); seen = 0
    for k, size, what in zip(sl.slice, sl['size'], sl.description):
        want = set(members[members.slice == k]['index']) & hard
        page.select_option('#ps-set', f'slice {k}')
        assert visible_index(page) == want, k
        assert text[f'slice {k}'] == f'slice {k}: {what} · {len(want)} of its {size} shown'
        seen += len(want)
    assert seen > 0  # some slice holds hard examples
    assert errors == [], errors

def test_diagnosis_badges_filter_and_reason(run, browser):
    "Stage 09's diagnosis on every diagnosed tile as a badge, a set per diagnosis in the filter, and the reason in the details."
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery.html').as_uri())
    dg = pd.read_csv(run/'hard/diagnosis.csv').set_index('index'); hard = hard_index(run)
    badges = dict(page.eval_on_selector_all('.ps-grid .ps-tile', """els => els.filter(e => e.querySelector('.ps-diag'))
        .map(e => [+e.dataset.index, e.querySelector('.ps-diag').textContent])"""))
    assert badges == {i: dg.diagnosis[i].replace('_', ' ') for i in dg.index if i in hard} and badges
    kinds = [v for v in page.eval_on_selector_all('#ps-set option', 'els => els.map(e => e.value)') if v.startswith('diagnosis: ')]
    assert kinds and set(kinds) == {f'diagnosis: {k}' for k in dg.diagnosis[dg.index.isin(hard)]}
    for k in kinds:
        page.select_option('#ps-set', k)
        assert visible_index(page) == set(dg.index[dg.diagnosis == k[11:]]) & hard, k
    i = next(iter(badges)); page.select_option('#ps-set', 'hard'); page.click(f'.ps-grid .ps-tile[data-index="{i}"]')
    assert dg.reason[i] in page.inner_text('#ps-detail')
    assert errors == [], errors

def test_details_neighbours(run, browser):
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery.html').as_uri())
    nb, names = pd.read_csv(run/'hard/neighbours.csv'), classes(run)
    assert set(nb['index']) == hard_index(run)
    for _, r in nb.head(3).iterrows():
        labels = [names[int(c)] for c in str(r.neighbour_labels).split(';')][:10]
        page.click(f'.ps-grid .ps-tile[data-index="{r["index"]}"]')
        assert page.is_visible('#ps-detail') and page.get_attribute('#ps-detail', 'data-index') == str(r['index'])
        shown = page.eval_on_selector_all('#ps-detail .ps-nbr .ps-nbr-name', 'els => els.map(e => e.textContent)')
        assert shown == labels and len(shown) == min(10, len(str(r.neighbours).split(';')))
        page.wait_for_function(loaded('#ps-detail img'))
        assert page.eval_on_selector_all('#ps-detail .ps-pics img', 'els => els.length') >= 2  # beside the CAMs
    page.click('#ps-close'); assert not page.is_visible('#ps-detail')
    assert errors == [], errors

def test_static_gallery_without_07(run, browser):
    page = browser.new_page(); errors = watch(page)
    page.goto((run/'gallery_without_07.html').as_uri())
    assert len(visible(page)) == len(hard_index(run)) > 0
    sets = page.eval_on_selector_all('#ps-set option', 'els => els.map(e => e.value)')
    assert sets == ['hard', 'misclassified', 'low_confidence', 'top_loss']  # no label issues, no slices
    assert page.query_selector('.ps-issue') is None
    page.click('.ps-grid .ps-tile')
    assert page.is_visible('#ps-detail') and page.query_selector('#ps-detail .ps-nbr') is None
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
        names = classes(run)  # the matrix's rows (true) and columns (predicted) are labelled with the class names
        assert page.eval_on_selector_all('.ps-cm-label[data-axis="pred"]', 'els => els.map(e => e.textContent)') == names
        assert page.eval_on_selector_all('.ps-cm-label[data-axis="true"]', 'els => els.map(e => e.textContent)') == names
        first = int(page.get_attribute('.ps-tile', 'data-index'))  # a tile's details: its nearest training images
        page.click('button:has-text("details")')
        page.wait_for_selector('.ps-detail .ps-nbr', timeout=60_000)
        nb = pd.read_csv(run/'hard/neighbours.csv').set_index('index')
        labels = [names[int(c)] for c in str(nb.neighbour_labels[first]).split(';')][:10]
        assert page.eval_on_selector_all('.ps-detail .ps-nbr-name', 'els => els.map(e => e.textContent)') == labels
        page.wait_for_function(loaded('.ps-detail .ps-nbr img'))
        page.click('button:has-text("close")'); page.wait_for_selector('.ps-detail', state='detached', timeout=60_000)
        fl = flagged(run); li = pd.read_csv(run/'hard/label_issues.csv')  # the label-issues set: exactly the flagged tiles
        n_test = li[li.split == 'test']['index'].nunique()
        label = f'label issues · {len(fl)} of the {n_test} flagged test examples shown'
        page.select_option('select >> nth=0', label=label)  # the widget's set dropdown
        page.wait_for_function(f"""() => {{ const ts = [...document.querySelectorAll('.ps-tile')];
            return ts.length === {min(12, len(fl))} && ts.every(e => e.querySelector('.ps-issue')); }}""", timeout=60_000)
        assert set(map(int, page.eval_on_selector_all('.ps-tile', 'els => els.map(e => e.dataset.index)'))) <= set(fl)
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

STUB_100 = """import types, numpy as np
from probing_sota.gallery import Gallery
names = [f'class {i:02d} with a long name' for i in range(100)]
stub = types.SimpleNamespace(cm=np.eye(100, dtype=int)*5 + 1, classes=names, without_test_images=[], true_name=lambda i: names[i])
Gallery._confusion_widget(types.SimpleNamespace(view=stub, filter_pair=lambda i, j: None))"""

REACHABLE = """sel => [...document.querySelectorAll(sel)].map(e => {
    e.scrollIntoView({block: 'center', inline: 'center'}); const r = e.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width/2, r.top + r.height/2);
    return !!hit && (hit === e || e.contains(hit) || hit.contains(e)); })"""

def test_widget_fits_a_jupyterlab_column(run, browser, tmp_path):
    "JupyterLab 4 in a 1,400-px window (an output column of about 1,000 px): every matrix cell and label can be reached (the "
    "matrix scrolls inside its box, never clipped), with the run's classes and with 100; each details button sits under its tile."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"from probing_sota.gallery import Gallery\nGallery(r'{run}', page_size=6)"),
                                         nbformat.v4.new_code_cell(STUB_100)])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    nbformat.write(nb, tmp_path/'gallery.ipynb')
    port = free_port(); env = {**os.environ, **{k: str(tmp_path/k.lower()) for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR',
                                                                                     'JUPYTERLAB_SETTINGS_DIR', 'JUPYTERLAB_WORKSPACES_DIR')}}
    lab = [sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1', '--IdentityProvider.token=',
           '--ServerApp.password=', '--expose-app-in-browser', '--LabApp.news_url=None', '--allow-root']
    proc = subprocess.Popen(lab, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try: socket.create_connection(('127.0.0.1', port), timeout=1).close(); break
            except OSError: time.sleep(0.5)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.goto(f'http://127.0.0.1:{port}/lab/tree/gallery.ipynb', timeout=120_000, wait_until='domcontentloaded')
        page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook-ExecutionIndicator')", timeout=120_000)
        page.wait_for_timeout(2000)  # the kernel connects
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector('.ps-tile', timeout=180_000); page.wait_for_selector('.ps-cm-99-99', state='attached', timeout=180_000)
        page.wait_for_timeout(1000)
        column = page.eval_on_selector('.jp-OutputArea-output', 'e => e.getBoundingClientRect().width')
        assert 900 <= column <= 1200, column  # the notebook column this check is about
        boxes = page.eval_on_selector_all('.ps-cm-box', 'els => els.map(e => [e.getBoundingClientRect().right, '
                                          'e.closest(".jp-OutputArea-output").getBoundingClientRect().right])')
        assert len(boxes) == 2 and all(r <= out + 1 for r, out in boxes), boxes  # each matrix ends inside the column
        n = len(classes(run))
        for sel in ['.jp-Cell:nth-child(1) .ps-cm-label[data-axis="pred"]', f'.ps-cm-{n - 1}-{n - 1}', '.ps-cm-0-99', '.ps-cm-99-99',
                    '.jp-Cell:nth-child(2) .ps-cm-label[data-axis="pred"]']:
            seen = page.evaluate(REACHABLE, sel)
            assert seen and all(seen), (sel, seen)
        gaps = page.eval_on_selector_all('.ps-tilebox', """els => els.map(b => { const t = b.querySelector('.ps-tile').getBoundingClientRect(),
            d = b.querySelector('button').getBoundingClientRect(); return [d.top - t.bottom, d.left - t.left]; })""")
        assert gaps and all(0 <= dy <= 12 and abs(dx) <= 12 for dy, dx in gaps), gaps  # right under its tile
        page.screenshot(path=str(tmp_path/'jupyterlab.png'), full_page=True)
    except Exception:
        page.screenshot(path=str(tmp_path/'jupyterlab-failed.png'), full_page=True)
        print(page.eval_on_selector_all('.jp-OutputArea-output', 'els => els.map(e => e.innerText.slice(0, 800))'))
        raise
    finally:
        proc.terminate(); proc.wait(10)
