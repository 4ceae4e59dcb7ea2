"""Probing a stock ImageNet model (real EfficientNet-Lite0 weights) on real photos of a subset of its classes: by WordNet id, by
name with a names file, by output index, several outputs per class; the scoring checked against timm's own; bad mappings refused."""
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch, timm
from probing_sota.data import imagenet_photos, load_dataset
from probing_sota.models import load_model_file, decode_size
from probing_sota.pipeline import PROBE_STAGES
from conftest import in_process, run_cli, STOCK_ARCH as ARCH, STOCK_BUDGETS as BUDGETS

NBS = Path(__file__).resolve().parent.parent/'nbs'

cli = run_cli  # probing-sota in a process of its own

def stock_logits(model_file:Path, root:Path)->tuple:
    "The plain timm model's 1000 logits on the folder's photos, with the preprocessing a probe of the file uses; and the data."
    data = load_dataset('imagefolder', 'test', data_root=root, image_size=256, test_fraction=1, progress=False)
    _, info = load_model_file(model_file, ARCH)  # the preprocessing a probe of the file uses: timm's, resize to 256, crop 224
    assert decode_size(info) == 256
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False); model.load_state_dict(torch.load(model_file)); model.eval()
    with torch.no_grad(): return model(info.transform()(torch.from_numpy(np.asarray(data.images)).permute(0, 3, 1, 2))), data

def timm_restricted(model_file:Path, root:Path)->tuple:
    """timm's subset scoring (validate.py --valid-labels): the logits restricted to the subset's outputs before the argmax.
    The subset's output indices come from timm's own synset file (timm/data/_info/imagenet_synsets.txt)."""
    logits, data = stock_logits(model_file, root); logits = logits.numpy()
    synsets = (Path(timm.__file__).parent/'data'/'_info'/'imagenet_synsets.txt').read_text().split()
    valid = np.array([synsets.index(c) for c in data.classes])
    return valid[logits[:, valid].argmax(1)], logits.argmax(1), data

def test_cli_probe_stock_model_on_wordnet_id_folders(stock, tmp_path):
    """No file needed: WordNet-id folders under an ImageNet head; the hard sets, the gallery's CAMs of the mapped classes and the
    report say how often it predicted outside. (Every stage of a probe on an all-test folder: test_imagefolder's flat folder.)"""
    r = cli('probe', '--model', ARCH, '--weights', stock/'lite0.pt', '--data', 'imagefolder', '--data-root', stock/'wnid', *BUDGETS,
            '--stages', 'evaluate,hard_examples,gallery,report', '--nbs', NBS, '--name', 'stock', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'stock'
    done = json.loads((run/'pipeline.json').read_text())['stages']
    assert list(done) == ['evaluate', 'hard_examples', 'gallery', 'report'] and all(v['status'] == 'done' for v in done.values()), done
    m = json.loads((run/'metrics.json').read_text())
    assert m['label_space'] == '19 classes of 1000 outputs, matched by WordNet id' and m['n'] == 20  # every photo a test image
    pred = pd.read_csv(run/'predictions.csv').sort_values('index')
    restricted, top1, data = timm_restricted(stock/'lite0.pt', stock/'wnid')
    synsets = (Path(timm.__file__).parent/'data'/'_info'/'imagenet_synsets.txt').read_text().split()
    ours = np.array([synsets.index(data.classes[p]) for p in pred.pred])
    assert (ours == restricted).all()  # the same prediction as timm's restricted argmax, image by image
    assert m['accuracy'] == pytest.approx(float((restricted == np.array([synsets.index(data.classes[y]) for y in data.labels])).mean()))
    assert (pred.top1_output.to_numpy() == top1).all()
    assert m['outside_n'] == int((~pred.top1_in_dataset).sum()) == sum(synsets[o] not in data.classes for o in top1)
    report = (run/'report.html').read_text()
    assert 'Outputs outside the dataset' in report and f"for <strong>{m['outside_n']} of the 20 images" in report
    assert (run/'gallery.html').exists() and not (run/'train_log.csv').exists()

def test_cli_probe_stock_model_on_name_folders_with_names_file(stock, tmp_path):
    """Class-name folders and a file of the model's 1000 output names, every default stage: the same predictions as the WordNet-id
    layout, right and sure on all 20 photos, and each stage says there is no mistake instead of drawing from nothing (#39)."""
    r = cli('probe', '--model', ARCH, '--weights', stock/'lite0.pt', '--data', 'imagefolder', '--data-root', stock/'name',
            '--classes', stock/'imagenet_classes.txt', *BUDGETS, '--nbs', NBS, '--name', 'names', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'names'
    done = json.loads((run/'pipeline.json').read_text())['stages']
    assert list(done) == PROBE_STAGES and all(v['status'] == 'done' for v in done.values()), done
    m = json.loads((run/'metrics.json').read_text()); assert m['matched_by'] == 'name' and m['n'] == 20
    pred = pd.read_csv(run/'predictions.csv')
    restricted, _, data = timm_restricted(stock/'lite0.pt', stock/'wnid')
    names = (stock/'imagenet_classes.txt').read_text().split('\n')
    files = [Path(f).name for f in data.files]
    by_file = dict(zip(files, [names[o] for o in restricted]))
    got = load_dataset('imagefolder', 'test', data_root=stock/'name', image_size=224, test_fraction=1, progress=False)
    assert [by_file[Path(got.files[i]).name] for i in range(len(got))] == pred.sort_values('index').pred_name.tolist()
    # no mistakes: right on all 20 and sure of each
    hard = json.loads((run/'hard'/'summary.json').read_text())
    assert (m['accuracy'], hard['misclassified'], hard['low_confidence']) == (1.0, 0, 0)
    assert hard['top_loss'] == hard['hard'] == 2  # the top tenth by loss, not all 20 images
    diag = json.loads((run/'hard'/'diagnosis_summary.json').read_text())
    assert diag['diagnosed'] == 0 and len(pd.read_csv(run/'hard'/'diagnosis.csv')) == 0
    assert 'No mistakes to diagnose' in (run/'notebooks'/'09_diagnosis.ipynb').read_text()  # what the stage said
    assert len(pd.read_csv(run/'hard'/'diagnosis_check.csv'))  # the planted checks still measure the rules
    for fig in ['diagnosis_shares.png', 'diagnosis_examples.png', 'cam_grid.png', 'image_stats.png', 'slices.png']:
        assert not (run/'figures'/fig).exists(), fig  # no figure drawn from nothing
    assert not (run/'gradcam_outputs'/'misclassified').exists() and not (run/'gradcam_outputs'/'slices').exists()
    words = 'The model made no mistakes on these 20 test images'
    report = (run/'report.html').read_text()
    assert words in report and 'No mistakes to diagnose' in report and 'No failure slices' in report
    assert 'Not in this run' not in report and 'Worst class' not in report and 'Every class: F1 1.0000' in report
    assert 'Within each true class' not in report  # no per-class comparison of mistakes that are not there
    assert words in (run/'gallery.html').read_text()
    from probing_sota.gallery import Gallery
    assert words in Gallery(run).widget.children[1].value  # the notebook's widget says it above its controls

def test_integer_folders_are_output_indices(stock, capsys):
    "ImageNet-V2's folders 0…999: read as numbers (and said so), not as the string order the folder listing gives."
    data = load_dataset('imagefolder', 'test', data_root=stock/'index', image_size=64, test_fraction=1, progress=False)
    assert data.classes[:3] == ['129', '22', '243']  # sorted as strings
    _, info = load_model_file(stock/'lite0.pt', ARCH, data.classes)
    assert info.label_space['outputs'] == [[int(c)] for c in data.classes] and info.label_space['matched_by'] == 'output index'
    assert 'read as the model\'s output indices' in capsys.readouterr().out

def test_several_outputs_per_class_from_a_mapping_file(stock, tmp_path):
    "A YAML mapping gives 'dog' every ImageNet dog (outputs 151-268) and 'vehicle' a few: probabilities summed per class."
    root = tmp_path/'coarse'
    for f, label in imagenet_photos():
        cls = 'dog' if 151 <= label <= 268 else 'vehicle' if label in (609, 471) else None
        if cls: (root/cls).mkdir(parents=True, exist_ok=True); (root/cls/f.name).write_bytes(f.read_bytes())
    (tmp_path/'map.yaml').write_text(f"dog: [{', '.join(map(str, range(151, 269)))}]\nvehicle: [jeep, cannon, n04037443, tank]\n")
    r = cli('probe', '--model', ARCH, '--weights', stock/'lite0.pt', '--data', 'imagefolder', '--data-root', root,
            '--mapping', tmp_path/'map.yaml', '--stages', 'evaluate', '--nbs', NBS, '--name', 'coarse', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'coarse'
    m = json.loads((run/'metrics.json').read_text())
    assert m['matched_by'] == 'mapping file' and m['n'] == 5 and m['label_space'].endswith('2 classes sum several outputs')
    logits, data = stock_logits(stock/'lite0.pt', root); p = logits.softmax(-1)
    groups = [list(range(151, 269)), [609, 471, 751, 847]]  # jeep, cannon, racer (n04037443), tank
    flat = sum(groups, []); sums = torch.stack([p[:, g].sum(1) for g in groups], 1)/p[:, flat].sum(1, keepdim=True)
    probs = np.load(run/'probs.npy')
    assert np.allclose(probs, sums.numpy(), atol=1e-4)  # the softmax over the mapped outputs, summed per class

BAD = [  # (what, mapping file text, what the error must say)
    ('unknown output', "n02108422: [bull mastiff]\nn03376595: [folding chair, unicornium]\n", 'map to no output'),
    ('a class mapped to nothing', "n02108422: [bull mastiff]\n", '18 of the dataset\'s 19 classes map to no output'),
    ('an output named twice', "n02108422: [bull mastiff, dalmatian]\nn02110341: [dalmatian]\n", 'named twice'),
    ('not a mapping', "- just\n- a list\n", 'should map each class to its outputs'),
]

@pytest.mark.parametrize('what,text,says', BAD, ids=[b[0] for b in BAD])
def test_bad_mapping_fails_before_anything_is_written(stock, tmp_path, monkeypatch, capsys, what, text, says):
    (tmp_path/'map.yaml').write_text(text)
    r = in_process('probe', '--model', ARCH, '--weights', stock/'lite0.pt', '--data', 'imagefolder', '--data-root', stock/'wnid',
                   '--mapping', 'map.yaml', '--nbs', NBS, '--name', 'bad', cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 2 and says in r.stderr, r.stderr[-2000:]
    assert not (tmp_path/'runs').exists()

def test_in_memory_stock_model_probed_on_a_subset(stock, tmp_path):
    "`probe()` of a stock timm model in a notebook: mapped by WordNet id, the caller's model left with its 1000 outputs."
    from probing_sota.pipeline import probe
    model = timm.create_model('tf_efficientnet_lite0'); model.load_state_dict(torch.load(stock/'lite0.pt')); model.eval()
    before = model.classifier.weight.clone()
    p = probe(model, 'imagefolder', run_dir=tmp_path/'mem', data_root=stock/'wnid', input_size=128, mean=(0.5,)*3, std=(0.5,)*3,
              max_images=4, max_per_set=4, device='cpu', track='tensorboard')
    assert p.metrics['matched_by'] == 'WordNet id' and p.metrics['n'] == 20 and 'outside_rate' in p.metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(tmp_path/'mem'/'tensorboard')); ea.Reload()  # the in-memory probe, tracked stage by stage
    assert ea.Scalars('test/accuracy')[0].value == pytest.approx(p.metrics['accuracy'])
    assert {'seconds/evaluate', 'seconds/gradcam', 'seconds/report'} <= set(ea.Tags()['scalars'])
    assert type(model.classifier) is torch.nn.Linear and torch.equal(model.classifier.weight, before)
    assert (tmp_path/'mem'/'report.html').exists()

def test_three_stock_models_in_one_command_then_compare(stock, tmp_path, monkeypatch, capsys):
    "Real EfficientNet-Lite0, -Lite1 and -Lite2 probed by one command (repeated --model/--weights) ending in their comparison."
    models = [a for n in ('lite0', 'lite1', 'lite2') for a in ('--model', f'timm:tf_efficientnet_{n}', '--weights', stock/f'{n}.pt')]
    r = cli('probe', *models, '--data', 'imagefolder', '--data-root', stock/'wnid', '--stages', 'evaluate,hard_examples',
            '--nbs', NBS, '--name', 'three', '--track', 'mlflow', cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = tmp_path/'runs'; out = runs/'three'/'comparison'
    assert {p.name for p in runs.iterdir()} == {'three', 'three-lite0', 'three-lite1', 'three-lite2', 'mlflow.db', 'mlartifacts'}
    from mlflow.tracking import MlflowClient
    from probing_sota.track import mlflow_uri
    c = MlflowClient(mlflow_uri(runs)); tracked = c.search_runs([c.get_experiment_by_name('probing_sota').experiment_id])
    parent = next(x for x in tracked if x.info.run_name == 'three')  # the comparison is the parent of the three probes
    assert sorted(x.info.run_name for x in tracked if x.data.tags.get('mlflow.parentRunId') == parent.info.run_id) == \
        ['three-lite0', 'three-lite1', 'three-lite2']
    assert {'models.csv', 'pairs.csv'} <= {Path(a.path).name for a in c.list_artifacts(parent.info.run_id, 'tables')}
    models_csv, pairs = pd.read_csv(out/'models.csv'), pd.read_csv(out/'pairs.csv')
    assert models_csv.model.tolist() == ['three-lite0', 'three-lite1', 'three-lite2'] and len(pairs) == 3
    for row in models_csv.itertuples():  # each model's accuracy is its own run's, with the same 20 photos
        assert row.n == 20 and row.accuracy == pytest.approx(json.loads((runs/row.model/'metrics.json').read_text())['accuracy'])
    assert len(pd.read_csv(out/'examples.csv')) == 20
    assert (runs/'three'/'report.html').exists() and (runs/'three'/'gallery.html').exists()
    perfect = models_csv.model[(models_csv.misclassified == 0) & (models_csv.low_confidence == 0)].tolist()
    assert 'three-lite0' in perfect  # right and sure on all 20 photos (as in the name-folder probe): said in words
    assert f"<strong>No mistakes:</strong> {', '.join(perfect)}" in (runs/'three'/'report.html').read_text()
    # the compare command on two of the runs, by name under --runs; one run alone is refused and writes nothing
    r = in_process('compare', 'three-lite0', 'three-lite2', '--name', 'two', cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 0, r.stderr[-2000:]
    assert pd.read_csv(runs/'two'/'comparison'/'pairs.csv')[['model_a', 'model_b']].values.tolist() == [['three-lite0', 'three-lite2']]
    r = in_process('compare', 'three-lite0', '--name', 'one', cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 2 and not (runs/'one').exists(), r.stderr

def test_several_files_need_one_model_each(stock, tmp_path, monkeypatch, capsys):
    r = in_process('probe', '--model', ARCH, '--weights', stock/'lite0.pt', '--weights', stock/'lite1.pt', '--data', 'imagefolder',
                   '--data-root', stock/'wnid', '--nbs', NBS, cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert r.returncode == 2 and '2 --weights but 1 --model' in r.stderr and not (tmp_path/'runs').exists()
