"""`make coverage`: the notebooks' exported cells counted as the lines of the modules nbdev exports them to.

nbdev_test (execnb's shell) and papermill's stage kernels run a notebook's `#| export` cells as cell code, so coverage.py
would see `<ipython-input-…>` and never `probing_sota/hard.py`: a stage's own functions would count as untested. Installed
in a shell (`install`), every cell whose code is an exported block (the lines after nbdev's `# %% ../nbs/NN.ipynb #id`
marker, its imports relative) is compiled under the module's file name, its lines shifted to the block's. Only for
`make coverage`:

    python tools/coverage_cells.py startup DIR     # an IPython startup file under DIR, the kernels' IPYTHONDIR
    python tools/coverage_cells.py nbdev_test ARGS # nbdev_test with the hook in each of its shells"""
import ast, re, sys
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent/'probing_sota'
MARK = re.compile(r'^# %% \.\./nbs/\S+\.ipynb #\w+')

def _key(lines:list)->str:
    "A block as both sides write it: nbdev's relative imports, no trailing spaces or blank lines."
    return '\n'.join(re.sub(r'\bfrom probing_sota\.', 'from .', l).rstrip() for l in lines).rstrip('\n')

def exported_blocks(lib:Path=LIB)->dict:
    "{block text: (module file, line number of the block's first line)} for every exported cell of the package."
    out = {}
    for f in sorted(lib.glob('*.py')):
        lines = f.read_text().splitlines()
        starts = [i for i, l in enumerate(lines) if MARK.match(l)]
        for s, e in zip(starts, starts[1:] + [len(lines)]): out[_key(lines[s + 1:e])] = (str(f), s + 2)
    return out

def install(shell, lib:Path=LIB):
    "Compile `shell`'s exported cells as their module's lines: `compile.cache` names the file, an AST transformer the lines."
    if getattr(shell, '_coverage_cells', False): return  # once: a second hook would shift the lines twice
    shell._coverage_cells = True
    blocks, cache, at = exported_blocks(lib), shell.compile.cache, {'shift': 0}
    def cache_as_module(code, number=0, raw_code=None):
        name = cache(code, number, raw_code)
        lines = (raw_code if raw_code is not None else code).splitlines(); d = 0
        while d < len(lines) and lines[d].startswith('#|'): d += 1  # nbdev drops the directives it exports with
        hit = blocks.get(_key(lines[d:]))
        at['shift'] = hit[1] - (d + 1) if hit else 0
        return hit[0] if hit else name
    class ShiftLines(ast.NodeTransformer):
        def visit_Module(self, node):
            if at['shift']: ast.increment_lineno(node, at['shift'])
            return node
    shell.compile.cache = cache_as_module; shell.ast_transformers.append(ShiftLines())

STARTUP = f"""import sys as _s; _s.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import coverage_cells as _c; _c.install(get_ipython()); _s.path.pop(0); del _s, _c
"""

if __name__ == '__main__':
    what, args = sys.argv[1], sys.argv[2:]
    if what == 'startup':
        d = Path(args[0])/'profile_default'/'startup'; d.mkdir(parents=True, exist_ok=True)
        (d/'00-coverage-cells.py').write_text(STARTUP)
    elif what == 'nbdev_test':
        from execnb.shell import CaptureShell
        init = CaptureShell.__init__
        def hooked(self, *a, **kw): init(self, *a, **kw); install(self)
        CaptureShell.__init__ = hooked
        from nbdev.test import nbdev_test
        sys.argv = ['nbdev_test', *args]; nbdev_test()
    else: sys.exit(f"usage: coverage_cells.py startup DIR | nbdev_test ARGS (not {what!r})")
