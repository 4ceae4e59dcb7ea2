"Probing a model the user already has: every weights format, every family through every stage, the CLI on real data, bad input."
import hashlib, json, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch, torchvision, timm
from PIL import Image
from safetensors.torch import save_file
from probing_sota.core import run_params
from probing_sota.data import load_dataset, BatchTransform
from probing_sota.models import load_model_file, run_model
from probing_sota.evaluate import evaluate_stage
from probing_sota.hard import hard_stage
from conftest import in_process
from probing_sota.cam import cam_stage
from probing_sota.gallery import export_gallery_html
from probing_sota.report import report_stage

FMNIST = Path('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
needs_fmnist = pytest.mark.skipif(not FMNIST.exists(), reason='Debian package dataset-fashion-mnist not installed (make test installs it as root)')
NBS = Path(__file__).resolve().parent.parent/'nbs'

def write_weights(model, path:Path, fmt:str)->Path:
    "Save `model` the way people do: each format the probe must read."
    sd = model.state_dict()
    if fmt == 'bare': torch.save(sd, path)
    elif fmt == 'lightning': torch.save({'epoch': 3, 'state_dict': {f'model.{k}': v for k, v in sd.items()}, 'optimizer_states': []}, path)
    elif fmt == 'model': torch.save({'model': sd, 'epoch': 3}, path)
    elif fmt == 'model_state_dict_ddp': torch.save({'model_state_dict': {f'module.{k}': v for k, v in sd.items()}}, path)
    elif fmt == 'compiled': torch.save({f'_orig_mod.{k}': v for k, v in sd.items()}, path)
    elif fmt == 'safetensors': save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    elif fmt == 'torchscript':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); torch.jit.save(torch.jit.trace(model.eval(), torch.zeros(1, 3, 32, 32)), str(path))
    return path

FORMATS = ['bare', 'lightning', 'model', 'model_state_dict_ddp', 'compiled', 'safetensors', 'torchscript']
OUTSIDE = {'torchvision': ('mobilenet_v3_small', lambda: torchvision.models.mobilenet_v3_small(num_classes=10)),
           'timm': ('resnet10t', lambda: timm.create_model('resnet10t', num_classes=10))}

def check_run(run_dir:Path, n:int):
    "The consistency checks of a trained run, on a probed one."
    m = json.loads((run_dir/'metrics.json').read_text()); cm = pd.read_csv(run_dir/'confusion_matrix.csv', index_col=0).values
    assert m['accuracy'] == pytest.approx(np.trace(cm)/cm.sum()) and cm.sum() == n
    probs = np.load(run_dir/'probs.npy'); assert probs.shape[0] == n and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert len(pd.read_csv(run_dir/'predictions.csv')) == n

@needs_fmnist
@pytest.mark.parametrize('lib', list(OUTSIDE))
@pytest.mark.parametrize('fmt', FORMATS)
def test_each_format_is_the_same_model(tmp_path, lib, fmt):
    "Every format of a torchvision and a timm model outside the registry loads into the same model, and stage 04 probes it."
    name, make = OUTSIDE[lib]
    torch.manual_seed(0); model = make().eval()
    f = write_weights(model, tmp_path/f'w.{"safetensors" if fmt == "safetensors" else "pt"}', fmt)
    data = load_dataset('fashion_mnist', 'test').subset(np.arange(16))
    x = BatchTransform(32)(torch.from_numpy(data.images).permute(0, 3, 1, 2))
    loaded, info = load_model_file(f, name, data.classes, input_size=32)
    with torch.no_grad(): assert torch.allclose(loaded(x), model(x), atol=1e-5)
    m = evaluate_stage(tmp_path/'run', dataset='fashion_mnist', n_test=60, weights=str(f), model_name=name, input_size=32, device='cpu')
    check_run(tmp_path/'run', 60)
    origin = run_params(tmp_path/'run')['model_origin']
    assert origin['file'] == str(f) and origin['sha256'] == hashlib.sha256(f.read_bytes()).hexdigest() and origin['format'] == info.origin['format']
    assert origin['preprocessing']['input_size'] == 32 and origin['target_layer'].endswith('(found by a probe pass)')

FAMILIES = {  # name -> (architecture, builder of random weights); small inputs, every family the issue names
    'vit-timm': ('vit_tiny_patch16_224', lambda: timm.create_model('vit_tiny_patch16_224', img_size=64, num_classes=10)),
    'vit-torchvision': ('vit_b_16', lambda: torchvision.models.vit_b_16(image_size=64, num_classes=10)),
    'swin-timm': ('swin_tiny_patch4_window7_224', lambda: timm.create_model('swin_tiny_patch4_window7_224', img_size=64, num_classes=10)),
    'swin-torchvision': ('swin_t', lambda: torchvision.models.swin_t(num_classes=10)),
    'deit-distilled': ('deit_tiny_distilled_patch16_224', lambda: timm.create_model('deit_tiny_distilled_patch16_224', img_size=64, num_classes=10)),
    'convnext': ('convnext_atto', lambda: timm.create_model('convnext_atto', num_classes=10)),
    'efficientnet': ('efficientnet_b0', lambda: torchvision.models.efficientnet_b0(num_classes=10)),
    'mobilenetv3': ('mobilenetv3_small_050', lambda: timm.create_model('mobilenetv3_small_050', num_classes=10)),
    'regnet': ('regnet_y_400mf', lambda: torchvision.models.regnet_y_400mf(num_classes=10)),
    'densenet': ('densenet121', lambda: torchvision.models.densenet121(num_classes=10)),
}

@needs_fmnist
@pytest.mark.parametrize('family', list(FAMILIES))
def test_every_family_through_every_stage(tmp_path, family):
    "A model of each family, saved as a state_dict, probed through the stage functions 04-07 and 09 on real Fashion-MNIST."
    arch, make = FAMILIES[family]
    torch.manual_seed(0); model = make()
    if family == 'vit-torchvision': torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision zero-initialises it
    f = tmp_path/'weights.pt'; torch.save(model.state_dict(), f)
    run = tmp_path/'run'
    evaluate_stage(run, dataset='fashion_mnist', n_test=80, weights=str(f), model_name=arch, input_size=64, device='cpu')
    check_run(run, 80)
    hard_stage(run)
    s = cam_stage(run, max_images=4, device='cpu')
    info = run_model(run)[1]
    assert s['layer'] == info.target_layer and min(s['map_size']) >= 2
    cams = pd.read_csv(run/'cam_metrics.csv'); assert len(cams) and (~cams.zero_map.astype(bool)).any()
    export_gallery_html(run, max_per_set=4)
    r = report_stage(run); assert 'training' in r['included'] and (run/'report.html').exists()
    assert 'trained elsewhere' in (run/'report.md').read_text()

EXE = Path(sys.executable).parent/'probing-sota'

def cli(*args, cwd):
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=900)

@needs_fmnist
def test_cli_probe_vit_on_fashion_mnist(tmp_path):
    "`probing-sota probe` end to end (papermill, stages 04-12) on a timm ViT outside the registry, from a safetensors file."
    torch.manual_seed(0)
    f = write_weights(timm.create_model('vit_tiny_patch16_224', img_size=64, num_classes=10), tmp_path/'vit.safetensors', 'safetensors')
    # stages 07-10 on small budgets: without a training stage 07 embeds up to why.max_train (20,000) training images itself
    budgets = ['-p', 'why.max_train=500', '-p', 'robustness.max_images=120', '-p', 'robustness.cam_images=16', '-p', 'robustness.max_cams=60',
               '-p', 'robustness.corruptions=blur,noise', '-p', 'gallery.max_per_set=12', '-p', 'baselines.n_train=300',
               '-p', 'baselines.cnn_epochs=1', '-p', 'diagnosis.plants=20', '-p', 'diagnosis.spurious=false']
    r = cli('probe', '--model', 'vit_tiny_patch16_224', '--weights', str(f), '--data', 'fashion_mnist', '--input-size', '64',
            '--preset', 'tiny', '-p', 'evaluate.n_test=200', '-p', 'gradcam.max_images=6', *budgets, '--nbs', str(NBS), '--name', 'vit',
            cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'vit'
    check_run(run, 200)
    state = json.loads((run/'pipeline.json').read_text())
    assert [k for k, v in state['stages'].items() if v['status'] == 'done'] == ['evaluate', 'hard_examples', 'gradcam', 'why', 'robustness',
                                                                             'diagnosis', 'gallery', 'baselines', 'report']
    cam = json.loads((run/'cam_summary.json').read_text()); assert cam['layer'] == 'blocks.11.norm1'
    assert 'peer_agreement' in cam  # recorded, never asserted in a run
    assert not (run/'train_log.csv').exists() and (run/'notebooks'/'06_gradcam.ipynb').exists()
    assert 'report.html' in r.stdout
    diag = pd.read_csv(run/'hard'/'diagnosis.csv'); pred = pd.read_csv(run/'predictions.csv')  # every mistake of the ViT, one row
    assert set(pred[pred.label != pred.pred]['index']) <= set(diag['index']) and diag['index'].is_unique
    assert set(pd.read_csv(run/'hard'/'diagnosis_check.csv').diagnosis) == {'label_error', 'out_of_distribution', 'ambiguous', 'corruption'}

def write_folder(root:Path, classes:list, per_class:int=8):
    "A small presplit image folder from real Fashion-MNIST images: odd class names, PNG and JPEG, grey and RGB."
    fm = load_dataset('fashion_mnist', 'test')
    for split, off in [('train', 0), ('val', 100)]:
        for c, name in enumerate(classes):
            d = root/split/name; d.mkdir(parents=True)
            idx = np.flatnonzero(fm.labels == c)[off:off + per_class]
            for j, i in enumerate(idx):
                im = Image.fromarray(fm.images[i][..., 0])
                (im.convert('RGB') if j % 2 else im).save(d/f'img {j}.{"jpg" if j % 3 == 0 else "png"}')

@needs_fmnist
def test_cli_probe_image_folder_with_classes_file(tmp_path):
    "An image folder whose class order differs from the model's: the classes file reorders the head for 04, the gallery and the report."
    names = ['T-shirt top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
    write_folder(tmp_path/'photos', [f'{i:02d} {n} é' for i, n in enumerate(names)])
    folder_classes = sorted(p.name for p in (tmp_path/'photos'/'train').iterdir())
    model_order = folder_classes[::-1]; (tmp_path/'classes.txt').write_text('\n'.join(model_order) + '\n')
    torch.manual_seed(0); f = tmp_path/'regnet.pth'; torch.save({'model': torchvision.models.regnet_y_400mf(num_classes=10).state_dict()}, f)
    r = cli('probe', '--model', 'regnet_y_400mf', '--weights', str(f), '--data', 'imagefolder', '--data-root', 'photos',
            '--classes', 'classes.txt', '--input-size', '64', '--crop-pct', '1', '--preset', 'tiny', '-p', 'gradcam.max_images=4',
            '--stages', 'evaluate,hard_examples,gallery,report', '--nbs', str(NBS), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path/'runs'/'probe-regnet'
    check_run(run, 80)
    cfg = run_params(run)
    assert cfg['model_origin']['class_order'] == 'reordered' and cfg['data_root'] == str(tmp_path/'photos')
    assert pd.read_csv(run/'class_names.csv').name.tolist() == folder_classes
    assert (run/'report.html').exists() and (run/'gallery.html').exists()

BAD = [  # (what, how the file is made, extra flags, what the error must say)
    ('unknown architecture', 'bare', ['--model', 'resnet1800'], "Unknown architecture 'resnet1800'"),
    ('another architecture', 'bare', ['--model', 'resnet34'], 'do not fit resnet34'),
    ('wrong class count', 'bare7', ['--model', 'resnet18'], 'has 7 outputs but the dataset has 10 classes'),
    ('pickled module', 'pickled', ['--model', 'resnet18'], 'whole pickled torchvision.models.resnet.ResNet'),
    ('empty file', 'empty', ['--model', 'resnet18'], 'is empty (0 bytes)'),
    ('truncated file', 'truncated', ['--model', 'resnet18'], 'corrupt or truncated'),
    ('classes file of the wrong length', 'bare', ['--model', 'resnet18', '--classes', 'nine.txt'], 'lists 9 classes'),
    ('missing file', 'none', ['--model', 'resnet18'], 'does not exist: give an existing path.'),
    ('zero std', 'bare', ['--model', 'resnet18', '--std', '0'], 'must be above 0'),
]

@needs_fmnist
@pytest.mark.parametrize('what,make,flags,says', BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_before_anything_is_written(tmp_path, monkeypatch, capsys, what, make, flags, says):
    "The command's own entry point, in this process (the checks run before any kernel starts, so nothing else differs)."
    f = tmp_path/'w.pt'
    r18 = torchvision.models.resnet18(num_classes=7 if make == 'bare7' else 10)
    if make in ('bare', 'bare7'): torch.save(r18.state_dict(), f)
    elif make == 'pickled': torch.save(r18, f)
    elif make == 'empty': f.touch()
    elif make == 'truncated': torch.save(r18.state_dict(), tmp_path/'full.pt'); f.write_bytes((tmp_path/'full.pt').read_bytes()[:100_000])
    (tmp_path/'nine.txt').write_text('\n'.join(f'c{i}' for i in range(9)))
    r = in_process('probe', '--weights', str(f), '--data', 'fashion_mnist', *flags, '--nbs', str(NBS), '--name', 'bad',
                   cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    code, err = r.returncode, r.stderr
    assert code == 2 and says in err, err[-2000:]
    assert 'training stage' not in err  # advice that fits a file the user brought
    assert not (tmp_path/'runs').exists()

@needs_fmnist
def test_yaml_config_probes_a_file_through_run(tmp_path, monkeypatch, capsys):
    "stage 04's weights parameter makes `run --config` (and sweeps) probe a file: stages 04-12, no training stage."
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path/'r18.pt')
    (tmp_path/'probe.yaml').write_text("evaluate:\n  weights: r18.pt\n  model_name: resnet18\n  dataset: fashion_mnist\n  input_size: 32\n")
    r = in_process('run', '--config', 'probe.yaml', '--preset', 'tiny', '--dry-run', '--nbs', str(NBS), cwd=tmp_path, capsys=capsys,
                   monkeypatch=monkeypatch)
    assert r.returncode == 0
    params = json.loads(r.stdout)
    assert params['evaluate']['weights'] == str(tmp_path/'r18.pt') and params['evaluate']['input_size'] == 32
    r = in_process('run', '--config', 'probe.yaml', '--preset', 'tiny', '--stages', '3-5', '--nbs', str(NBS), cwd=tmp_path, capsys=capsys,
                   monkeypatch=monkeypatch)
    assert r.returncode == 2
    assert 'no training stage' in r.stderr and not (tmp_path/'runs').exists()

def test_a_run_folder_probes_one_file(tmp_path):
    "Two files with one name do not share a run silently; a stage rerun marks every later stage stale, selected or not."
    from probing_sota.pipeline import prepare_pipeline_dir, run_pipeline
    a = {'evaluate': {'weights': '/a/r18.pt'}, 'report': {}}; b = {'evaluate': {'weights': '/b/r18.pt'}, 'report': {}}
    state = prepare_pipeline_dir(tmp_path/'run', a); state['stages']['evaluate'] = {'status': 'done'}
    (tmp_path/'run'/'pipeline.json').write_text(json.dumps(state))
    with pytest.raises(Exception, match=r'probed the model file /a/r18.pt, not /b/r18.pt: choose another --name'):
        prepare_pipeline_dir(tmp_path/'run', b)
    assert prepare_pipeline_dir(tmp_path/'run', b, force=True)['stages'] == {}
