"The notebooks carry outputs from the current code (tools/notebooks.py, `make nbs`), within their size budget."
import base64, io, sys
from pathlib import Path
import nbformat, pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import notebooks as N

@pytest.mark.parametrize('path', N.notebooks(), ids=lambda p: p.name)
def test_stored_outputs_are_from_the_current_code(path):
    "Executed outputs (figures where the notebook draws), the digest of the current code, no stored error, within budget."
    assert N.problems(path) == []

def test_digest_follows_cells_and_imported_modules(tmp_path):
    lib = tmp_path/'lib'; lib.mkdir()
    (lib/'core.py').write_text('X = 1\n'); (lib/'data.py').write_text('from .core import X\n'); (lib/'other.py').write_text('Y = 2\n')
    nb = new_notebook(cells=[new_code_cell('#| default_exp data'), new_code_cell('from probing_sota.data import *\nprint(X)')])
    assert N.imported_modules(nb, lib) == {'data', 'core'}  # other.py is not used, so it is not in the digest
    d = N.digest(nb, lib)
    (lib/'other.py').write_text('Y = 3\n'); assert N.digest(nb, lib) == d
    (lib/'core.py').write_text('X = 2\n'); assert N.digest(nb, lib) != d  # a module imported through data.py changed
    d = N.digest(nb, lib); nb.cells[1].source += '\nprint(1)'; assert N.digest(nb, lib) != d
    d = N.digest(nb, lib); nb.cells.append(new_markdown_cell('prose')); assert N.digest(nb, lib) == d  # prose is not code

def test_cells_nbdev_test_skips_are_skipped():
    flags = N.test_flags()
    assert {'slow', 'cuda'} <= set(flags)
    assert N.skipped(new_code_cell('#| eval: false\nmain()'), flags) and N.skipped(new_code_cell('#| cuda\nx.cuda()'), flags)
    assert not N.skipped(new_code_cell('#| hide\nx = 1'), flags) and not N.skipped(new_code_cell('# eval: false'), flags)

def test_big_figures_are_shrunk():
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (900, 2400, 3), dtype=np.uint8))
    buf = io.BytesIO(); im.save(buf, 'PNG'); b64 = base64.b64encode(buf.getvalue()).decode()
    small = Image.open(io.BytesIO(base64.b64decode(N.shrink_png(b64))))
    assert small.width == N.MAX_SIDE and small.height == 450
    tiny = io.BytesIO(); Image.new('RGB', (50, 40), 'red').save(tiny, 'PNG'); t64 = base64.b64encode(tiny.getvalue()).decode()
    assert N.shrink_png(t64) == t64  # small figures are kept byte for byte

def test_execute_then_check_then_stale(tmp_path):
    """A notebook executed in place keeps its figure and its digest; skipped cells keep nothing; an edit makes it stale; an
    import beside other code (which nbdev's docs build runs alone) is named."""
    path = tmp_path/'99_demo.ipynb'
    nb = new_notebook(cells=[new_markdown_cell('# Demo'), new_code_cell('import matplotlib.pyplot as plt'), new_code_cell('plt.plot([1, 3, 2]);'),
                             new_code_cell('#| eval: false\nprint("not run")'), new_code_cell('print(6*7)')],
                      metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    nbformat.write(nb, path)
    assert N.problems(path) == ['99_demo.ipynb has no outputs: run `make nbs NB=99_demo.ipynb` and commit the notebook']
    N.execute(path)
    done = nbformat.read(path, as_version=4)
    assert any('image/png' in o.get('data', {}) for o in done.cells[2].outputs)
    assert done.cells[3].outputs == [] and 'tags' not in done.cells[3].metadata
    assert done.cells[4].outputs[0]['text'] == '42\n' and done.cells[4].execution_count is None  # cleaned as nbdev_clean does
    assert N.problems(path) == []
    figure = done.cells[2].outputs; done.cells[2].outputs = [o for o in figure if 'image/png' not in o.get('data', {})]
    nbformat.write(done, path)
    assert N.problems(path) == ['99_demo.ipynb: cells [2] draw but store no figure: run `make nbs NB=99_demo.ipynb` and commit the notebook']
    done.cells[2].outputs = figure
    done.cells[4].source = 'print(6*9)'; nbformat.write(done, path)
    assert 'outputs are from other code' in N.problems(path)[0]
    done.cells[4].source = 'import math\nprint(math.pi)'; nbformat.write(done, path)
    assert "cells [4] import beside other code, which nbdev's docs build runs" in N.problems(path)[-1]

def test_only_the_shown_widgets_keep_their_state():
    "A widget a test made but never showed is not stored; the ones inside a shown widget are."
    state = {'a': {'state': {'children': ['IPY_MODEL_b']}}, 'b': {'state': {'value': 'x'}}, 'c': {'state': {'value': 'y'}}}
    view = {'output_type': 'display_data', 'metadata': {},
            'data': {'application/vnd.jupyter.widget-view+json': {'model_id': 'a', 'version_major': 2, 'version_minor': 0}}}
    nb = new_notebook(cells=[new_code_cell('w', outputs=[nbformat.from_dict(view)])],
                      metadata={'widgets': {'application/vnd.jupyter.widget-state+json': {'state': state}}})
    assert set(N.widget_state(N.prune_widgets(nb))) == {'a', 'b'}

def test_notebooks_run_at_once_each_in_its_own_kernel(tmp_path, capsys):
    "`make nbs` runs notebooks side by side: each kernel has its own sockets (the pipeline's kernel manager names them per manager)."
    paths = []
    for k in range(3):
        p = tmp_path/f'9{k}_side.ipynb'; paths.append(p)
        nbformat.write(new_notebook(cells=[new_code_cell(f'import os\nprint({k}, os.environ["OMP_NUM_THREADS"])')],
                                    metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}), p)
    assert N.run_all(paths, jobs=3) == 0, capsys.readouterr().err
    assert [nbformat.read(p, as_version=4).cells[0].outputs[0]['text'] for p in paths] == [f'{k} 1\n' for k in range(3)]
    bad = tmp_path/'93_bad.ipynb'; nbformat.write(new_notebook(cells=[new_code_cell('1/0')]), bad)
    assert N.run_all([bad, paths[0]], jobs=2) == 1 and '93_bad.ipynb: ' in capsys.readouterr().err  # named; the other still ran
