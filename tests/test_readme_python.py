"""The README's "From Python" snippets, run as written against the tests'
tiny trained models: only the quoted paths are replaced (each must occur,
so the README and this test cannot drift apart)."""

import contextlib
import io
import os
import re
import shutil

from tests.classification.test_checkpoint_compat import SAVED
from tests.helpers import ROOT

SECTION = '## From Python'


def readme_snippets() -> str:
  """The ```python blocks of the README's SECTION, in order, as one script."""
  with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    text = f.read()
  start = text.index(f'\n{SECTION}\n')
  end = text.find('\n## ', start + 1)
  section = text[start:end if end >= 0 else None]
  return '\n'.join(re.findall(r'```python\n(.*?)```', section, re.S))


def test_the_readmes_python_snippets_run(small_data, detection_setup,
                                         trained_detector, tmp_path):
  workdir = tmp_path / 'tiny'
  shutil.copytree(SAVED, workdir / 'checkpoints')
  photo = os.path.join(small_data, 'val', 'circle',
                       sorted(os.listdir(os.path.join(small_data, 'val',
                                                      'circle')))[0])
  street = os.path.join(detection_setup[0], 'test', 'images', '000001.jpg')
  broken = tmp_path / 'broken.jpg'
  broken.write_bytes(b'\xff\xd8 truncated')
  paths = {'runs/tiny': str(workdir), 'runs/detection': trained_detector[0],
           'photo.jpg': photo, 'street.jpg': street, 'broken.jpg': str(broken)}
  script = readme_snippets()
  for name, path in paths.items():
    assert f"'{name}'" in script, name
    script = script.replace(f"'{name}'", repr(path))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(script, 'README.md (From Python)', 'exec'), {})  # pylint: disable=exec-used
  lines = out.getvalue().splitlines()
  assert lines[0].startswith("('checkerboard', 'circle', ")
  assert lines[1] == '(2, 10)'
  assert len(lines[2].split()) == 2 and lines[2].split()[0] != lines[3].split()[0]
  assert lines[-1].startswith(f'{broken}: not a readable image')
