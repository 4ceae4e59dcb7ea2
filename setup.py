"setup.py for probing_sota, reading settings.ini as nbdev 2 does."
from configparser import ConfigParser
from pathlib import Path
import ast, setuptools, shlex, shutil
from setuptools.command.build_py import build_py

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

expected = 'version description keywords author author_email'.split()
missing = [o for o in expected if o not in cfg]
if missing: raise ValueError(f"settings.ini is missing {missing}: add them under [DEFAULT]")

licenses = {'apache2': 'Apache-2.0'}  # SPDX expression (license classifiers are deprecated)
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
track_requirements = shlex.split(cfg.get('track_requirements', ''))  # W&B, MLflow, TensorBoard: `--track`
hf_requirements = shlex.split(cfg.get('hf_requirements', ''))  # Hugging Face datasets: `--data hf`
lic = licenses.get(cfg['license'].lower(), cfg['license'])
min_python = cfg['min_python']
scripts = [s.strip() for s in cfg.get('console_scripts', '').split('\n') if s.strip()]

def stage_notebooks()->list[Path]:
    "The notebooks `probing-sota run` executes: nbs/NN_*.ipynb for each number in the pipeline's `STAGES`."
    tree = ast.parse(Path(cfg['lib_path'], 'pipeline.py').read_text(encoding='utf-8'))
    stages = next(ast.literal_eval(n.value) for n in tree.body
                  if isinstance(n, ast.Assign) and [getattr(t, 'id', None) for t in n.targets] == ['STAGES'])
    found = {n: sorted(Path(cfg['nbs_path']).glob(f'{n:02d}_*.ipynb')) for n in stages}
    if (missing := [f'{n:02d}_*.ipynb' for n, fs in found.items() if not fs]):
        raise FileNotFoundError(f"{cfg['nbs_path']}/ lacks the stage notebooks {', '.join(missing)}: build from a full clone or sdist")
    return [fs[0] for fs in found.values()]

class BuildWithNotebooks(build_py):
    "build_py that also puts the stage notebooks, byte for byte, in the package (probing_sota/nbs/), so that a wheel runs the pipeline."
    def notebooks(self)->list[tuple[Path, Path]]:
        "(notebook, its copy in the build); none for an editable install, which reads the repository's own nbs/."
        if getattr(self, 'editable_mode', False): return []
        dest = Path(self.build_lib, cfg['lib_path'], 'nbs')
        return [(nb, dest/nb.name) for nb in stage_notebooks()]
    def run(self):
        super().run()
        if not (copies := self.notebooks()): return
        dest = copies[0][1].parent; shutil.rmtree(dest, ignore_errors=True); dest.mkdir(parents=True)  # no stale copy of an earlier build
        for nb, copy in copies: shutil.copyfile(nb, copy)
    def get_outputs(self, include_bytecode=True): return super().get_outputs(include_bytecode) + [str(c) for _, c in self.notebooks()]

setuptools.setup(
    cmdclass={'build_py': BuildWithNotebooks},
    name=cfg['lib_name'],
    license=lic,
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['probing_sota', 'probing_sota.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements + track_requirements + hf_requirements, 'track': track_requirements, 'hf': hf_requirements},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"]},
    version=cfg['version'],
    description=cfg['description'],
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
)
