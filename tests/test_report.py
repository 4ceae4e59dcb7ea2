"The run's report (12): built from the run's files only, self-contained, honest about what is missing; and opened in headless Chromium."
import base64, json, re, shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse
import pandas as pd, pytest
from probing_sota.core import ProbingError
from probing_sota.report import report_stage, fmt, pct, METRIC_ROWS
from conftest import copy_run, BASELINES_OUT

NBS = Path(__file__).resolve().parents[1]/'nbs'

@pytest.fixture(scope='module')
def run(tiny_run, tmp_path_factory):
    "The shared tiny run (stages 03-12), copied without stage 11's files (two tests add their own) and without the pipeline's report."
    return copy_run(tiny_run, tmp_path_factory.mktemp('r')/'run', drop=[*BASELINES_OUT, 'report.html', 'report.md', 'report_files'])

@pytest.fixture(scope='module')
def report(run):
    return report_stage(run, max_cases=4)

partial_copy = copy_run  # a copy of the run without the files/folders in `drop`

class Doc(HTMLParser):
    "What the tests look at in report.html: images, links, ids, and each section's tables and text."
    def __init__(self, text):
        super().__init__(); self.imgs, self.links, self.ids, self.sections = [], [], set(), {}
        self._sec = self._row = self._cell = None
        self.feed(text)
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'section': self._sec = a['id']; self.sections[self._sec] = {'tables': [], 'text': ''}
        elif tag == 'img': self.imgs.append(a.get('src') or '')
        elif tag == 'a': self.links.append(a.get('href') or '')
        elif tag == 'table' and self._sec: self.sections[self._sec]['tables'].append([])
        elif tag == 'tr' and self._sec: self._row = []; self.sections[self._sec]['tables'][-1].append(self._row)
        elif tag in ('td', 'th') and self._row is not None: self._cell = ''
    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self._cell is not None: self._row.append(self._cell); self._cell = None
        elif tag == 'tr': self._row = None
        elif tag == 'section': self._sec = None
    def handle_data(self, data):
        if self._cell is not None: self._cell += data
        if self._sec: self.sections[self._sec]['text'] += data

def doc(run)->Doc: return Doc((run/'report.html').read_text())
def numbers(text:str)->list[float]: return [float(x) for x in re.findall(r'(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?', text)]

def test_files_written(run, report):
    assert report['html'] == run/'report.html' and report['html'].exists() and report['markdown'].exists()
    assert (run/'report_files/cam_stats.png').exists()
    assert {'run', 'metrics', 'per_class', 'confusion', 'calibration', 'hard', 'cases', 'cam_stats', 'why', 'claims', 'links'} <= set(report['included'])
    assert report['missing'] == []  # the tiny run has every stage but 09, whose section is left out silently

def test_why_section(run, report):
    "The numbers of 'Why are they hard?' are stage 07's, and its tables and figure are there."
    s, d = json.loads((run/'hard/why_summary.json').read_text()), doc(run)
    text = d.sections['why']['text']
    li, ck = s['label_issues'], s['checks']
    assert f"cleanlab flags {li['test']} test labels" in text and f"{li['hard_flagged']} of the {s['hard']} hard examples" in text
    assert f"found {ck['label_flips']['found']} (recall" in text and f"holds {ck['corrupted_slice']['top_slice_size']} images" in text
    assert f"Of the {s['neighbours']['misclassified']} misclassified hard examples" in text
    sl = pd.read_csv(run/'hard/slices.csv')
    assert sl.description.iloc[0] in text and (run/'figures/slices.png').exists()
    assert not list(run.glob('.report*.tmp'))  # atomic writes leave no temporary files

def test_claims_section(run, report):
    "Every claim of stage 08 is in the report with its value, interval and verdict; the sweep's sentence uses robustness.csv's numbers."
    d, cl = doc(run), pd.read_csv(run/'claims.csv')
    rows = d.sections['claims']['tables'][0]
    assert rows[0] == ['claim', 'measurement', 'value', '95% interval', 'verdict']
    assert [r[4] for r in rows[1:]] == cl.verdict.tolist() and [r[2] for r in rows[1:]] == [f'{v:+.3f}' for v in cl.value]
    rob, s = pd.read_csv(run/'robustness.csv'), json.loads((run/'robustness_summary.json').read_text())
    text = d.sections['claims']['text']
    for r in rob[rob.severity == 3].itertuples(): assert f"{r.corruption.replace('_', ' ')} {pct(r.accuracy, 1)}" in text
    w = rob[rob.corruption != 'none'].sort_values('ece').iloc[-1]
    assert f"most confidently wrong under {w.corruption.replace('_', ' ')} at severity {int(w.severity)}" in text
    assert f"{cl.verdict.eq('supported').sum()} supported" in d.sections['glance']['text']
    assert 'No remedies compared with this run' in text
    pc = pd.read_csv(run/'image_stats_per_class.csv'); d = pc[(pc.statistic == 'foreground_share') & (pc.set == 'misclassified')]
    assert f"foreground share is higher than the confident ones' in {int((d.lo > 0).sum())} classes" in text

def test_metrics_equal_metrics_json(run, report):
    m, d = json.loads((run/'metrics.json').read_text()), doc(run)
    table = d.sections['metrics']['tables'][0]
    assert table[0][:2] == ['metric', 'value']
    shown = {r[0]: r[1] for r in table[1:]}
    names = {name: key for key, name, _ in METRIC_ROWS}
    assert set(shown) == {name for key, name, _ in METRIC_ROWS if key in m}
    for name, cell in shown.items():
        assert cell == fmt(m[names[name]]), (name, cell, m[names[name]])
        assert abs(float(cell) - m[names[name]]) <= 5e-5
    # every number in the sentence above the table is one of metrics.json's (as printed, or as a percentage)
    sentence = re.search(r'On the .*?\)\.', d.sections['metrics']['text']).group(0)
    vals = [v for v in m.values() if isinstance(v, (int, float))]
    for x in numbers(sentence):
        assert any(abs(x - v) <= 5e-5 or abs(x - 100*v) <= 5e-3 for v in vals), (x, sentence)
    assert pct(m['accuracy']) in sentence
    # the training table, from train_log.csv
    log = pd.read_csv(run/'train_log.csv'); tr = {r[0]: r[1] for r in d.sections['metrics']['tables'][1][1:]}
    assert tr['epochs trained'] == str(len(log)) and tr['best validation accuracy'] == fmt(float(log.val_acc.max()))

def test_tables_match_their_files(run, report):
    d = doc(run)
    pc = pd.read_csv(run/'per_class.csv').sort_values('f1', kind='stable')
    rows = d.sections['per_class']['tables'][0][1:]
    assert [r[0] for r in rows] == pc['class'].tolist() and [r[3] for r in rows] == [fmt(v) for v in pc.f1]
    hs = json.loads((run/'hard/summary.json').read_text())
    counts = {r[0]: r[1] for r in d.sections['hard']['tables'][0][1:]}
    assert counts['misclassified'] == str(hs['misclassified']) and counts['hard (union)'] == str(hs['hard'])
    cs = json.loads((run/'cam_summary.json').read_text())
    cam = {r[0]: r for r in d.sections['cam_stats']['tables'][0]}
    col = cam['set'].index('border_share')
    assert cam['misclassified'][col] == fmt(cs['by_set']['misclassified']['border_share'])
    assert cam['uniform map'][col] == fmt(cs['border_area'])
    assert cs['sanity_check']['verdict'] in d.sections['cam_stats']['text']
    assert re.search(r'(Supported|Not supported|The opposite holds)', d.sections['cam_stats']['text'])

def test_images_inline(run, report):
    d = doc(run)
    mis = pd.read_csv(run/'hard/misclassified.csv')
    n_cases = min(4, sum((run/f'gradcam_outputs/misclassified/{i}.png').exists() for i in mis['index']))
    figures = ['training_curves', 'confusion_matrix', 'reliability', 'data_map', 'cam_grid', 'slices',  # no embedding map: off in the fixture
               'robustness', 'image_stats'] + [f for f in ['diagnosis_shares', 'diagnosis_examples'] if (run/'figures'/f'{f}.png').exists()]
    assert len(d.imgs) == len(figures) + n_cases + 1  # + report_files/cam_stats.png
    for src in d.imgs:
        assert src.startswith(('data:image/png;base64,', 'data:image/jpeg;base64,')), src[:60]
        raw = base64.b64decode(src.split(',', 1)[1])
        assert raw[:8] == b'\x89PNG\r\n\x1a\n' or raw[:2] == b'\xff\xd8'
    text = (run/'report.html').read_text()
    assert '<script' not in text and '<link' not in text and not re.search(r'(src|href)="(https?:)?//', text)

def test_links_relative_and_resolve(run, report):
    d = doc(run)
    assert 'gallery.html' in d.links
    for h in d.links:
        if h.startswith('#'): assert h[1:] in d.ids, h; continue
        u = urlparse(h)
        assert not u.scheme and not u.netloc and not h.startswith('/'), h
        assert (run/unquote(u.path)).exists(), h

def test_markdown_references_files(run, report):
    md = (run/'report.md').read_text()
    m = json.loads((run/'metrics.json').read_text())
    assert f"| accuracy | {fmt(m['accuracy'])} |" in md and f"| ECE | {fmt(m['ece'])} |" in md
    imgs = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', md)
    assert 'figures/confusion_matrix.png' in imgs and 'report_files/cam_stats.png' in imgs
    assert any(i.startswith('gradcam_outputs/misclassified/') for i in imgs)
    for target in imgs + re.findall(r'(?<!!)\[[^\]]*\]\(([^)]+)\)', md):
        assert not urlparse(target).scheme and not target.startswith('/'), target
        assert (run/unquote(target)).exists(), target
    assert 'data:' not in md

def test_missing_stages_are_named(run, tmp_path):
    part = partial_copy(run, tmp_path/'part', drop=['cam_summary.json', 'gallery.html'])
    res = report_stage(part)
    d = doc(part)
    assert 'No cam_summary.json in this run: stage 06_gradcam writes it' in d.sections['cam_stats']['text']
    assert 'stage 10_gallery writes it' in d.sections['links']['text'] and 'gallery.html' not in d.links
    assert {'file': 'cam_summary.json', 'stage': '06_gradcam'} in res['missing']
    assert 'cam_stats' not in res['included'] and 'metrics' in res['included']
    assert '> **Missing.** No `cam_summary.json` in this run: stage 06_gradcam writes it.' in (part/'report.md').read_text()

def test_run_after_training_only(run, tmp_path):
    early = tmp_path/'early'; (early/'figures').mkdir(parents=True)
    for f in ['config.json', 'train_log.csv', 'figures/training_curves.png']: shutil.copy(run/f, early/f)
    res = report_stage(early)
    assert {m['stage'] for m in res['missing']} >= {'04_evaluate', '05_hard_examples', '06_gradcam', '10_gallery'}
    d = doc(early)
    assert 'stage 04_evaluate writes it' in d.sections['per_class']['text']
    assert 'stage 05_hard_examples writes it' in d.sections['hard']['text']
    assert 'stage 06_gradcam writes it' in d.sections['cases']['text']
    assert len(d.imgs) == 1 and d.imgs[0].startswith('data:image/png')

def test_baselines_only_when_present(run, tmp_path):
    assert 'baselines' not in doc(run).sections
    part = partial_copy(run, tmp_path/'b')
    (part/'baselines').mkdir()
    pd.DataFrame({'model': ['knn', 'fine-tuned'], 'accuracy': [0.61, 0.9]}).to_csv(part/'baselines/comparison.csv', index=False)
    res = report_stage(part)
    assert 'baselines' in res['included']
    assert doc(part).sections['baselines']['tables'][0][1] == ['knn', '0.6100']

@pytest.mark.parametrize('make, msg', [
    (lambda p: p/'nope', 'does not exist'),
    (lambda p: p, 'has no config.json'),
    (lambda p: (p/'f.txt').write_text('x') and p/'f.txt', 'is a file, not a run directory'),
])
def test_bad_run_dir(tmp_path, make, msg):
    with pytest.raises(ProbingError, match=msg): report_stage(make(tmp_path))

def test_damaged_file_names_the_stage(run, tmp_path):
    part = partial_copy(run, tmp_path/'bad')
    (part/'metrics.json').write_text('{"accuracy": ')
    with pytest.raises(ProbingError, match='rerun stage 04_evaluate'): report_stage(part)

def test_notebook_with_parameters(run, tmp_path):
    "The stage notebook as the pipeline runs it: its parameters read by the pipeline, papermill with run_dir and max_cases."
    import papermill as pm
    from probing_sota.pipeline import stage_parameters, stage_input
    assert set(stage_parameters(NBS)['report']) == {'max_cases', 'title'}  # run_dir is the pipeline's own
    part = partial_copy(run, tmp_path/'pm', drop=['report.html', 'report.md'])
    with stage_input(NBS/'12_report.ipynb') as src:
        pm.execute_notebook(src, str(tmp_path/'out.ipynb'), parameters={'run_dir': str(part), 'max_cases': 2},
                            cwd=str(NBS), kernel_name='python3', progress_bar=False)
    assert (part/'report.md').exists()
    cases = (part/'report.html').read_text().split('<div class="ps-cases">')[1].split('</div>')[0]
    assert 0 < cases.count('<figure>') <= 2  # max_cases reached the stage

def test_report_in_browser(run, report, browser):
    page = browser.new_page(); errors = []
    page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
    page.goto((run/'report.html').as_uri(), wait_until='load')
    assert page.eval_on_selector_all('img', 'els => els.length') == len(doc(run).imgs) > 0
    assert page.eval_on_selector_all('img', 'els => els.every(e => e.complete && e.naturalWidth > 0)')
    href = page.eval_on_selector('a[href="gallery.html"]', 'a => a.href')  # resolved by the browser
    assert href.startswith('file://') and Path(unquote(urlparse(href).path)) == run/'gallery.html' and (run/'gallery.html').exists()
    page.click('a[href="gallery.html"]'); page.wait_for_load_state('load')
    assert page.url.endswith('/gallery.html') and page.eval_on_selector_all('.ps-tile', 'els => els.length') > 0
    assert errors == [], errors
    page.close()
