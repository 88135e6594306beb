"""The package installs as a wheel (every subpackage in it) and imports from any
folder, with no path set up by hand: `pip install .` into a fresh virtualenv."""

import os
import re
import site
import subprocess
import sys

from tests.helpers import ROOT


def _run(*command, cwd=None):
  result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  return result.stdout


def test_pip_install_into_a_fresh_virtualenv_imports_from_another_folder(tmp_path):
  fresh = tmp_path / 'venv'
  _run(sys.executable, '-m', 'venv', str(fresh))
  python = str(fresh / 'bin' / 'python')
  # The dependencies come from this environment (read-only, no download); the
  # package itself is built from the source tree and installed as a wheel.
  fresh_site = _run(python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))').strip()
  with open(os.path.join(fresh_site, 'test_dependencies.pth'), 'w') as f:
    f.write('\n'.join(site.getsitepackages()) + '\n')
  _run(python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
       '--no-index', ROOT, cwd=str(tmp_path))
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  out = _run(python, '-c', 'import sppnet_jax, sppnet_jax.classification.main, '
             'sppnet_jax.core.data.sources, sppnet_jax.detection; '
             'print(sppnet_jax.__file__); print(sppnet_jax.spatial_pyramid_pool, '
             'sppnet_jax.SPPNet)', cwd=str(elsewhere))
  installed, names = out.strip().splitlines()
  assert installed.startswith(fresh_site), installed  # the wheel, not the tree
  assert 'function spatial_pyramid_pool' in names and 'SPPNet' in names


def test_pyproject_lists_every_pinned_runtime_dependency():
  with open(os.path.join(ROOT, 'requirements.txt')) as f:
    pinned = {re.split('[=<>]', line)[0].strip().lower().replace('_', '-')
              for line in f if re.match(r'^[A-Za-z]', line)}
  with open(os.path.join(ROOT, 'pyproject.toml')) as f:
    declared = {re.split('[=<>]', name)[0].lower().replace('_', '-')
                for name in re.findall(r'^\s+"([^"]+)",', f.read(), re.M)}
  # Tests' own tools are not the library's dependencies.
  assert pinned - {'pytest', 'pytest-xdist', 'jaxlib'} == declared
