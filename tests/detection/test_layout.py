"""The detection package's rooms import only the rooms below them, detection
reaches classification only in backbone.py, and no library module is longer
than the layout allows: checked on the source, import statement by import
statement (so a new module cannot slip a dependency the wrong way)."""

import ast
import os

from tests.helpers import ROOT

PACKAGE = os.path.join(ROOT, 'sppnet_jax')
DETECTION = os.path.join(PACKAGE, 'detection')
# Each room's rank: a module may import detection modules of a lower rank, or
# of its own room (a subpackage's modules among themselves).
RANKS = {'config': 0, 'boxes': 0, 'stage_files': 0, 'backbone': 1, 'data': 2,
         'proposals': 3, 'features': 3, 'inference': 4, 'evaluation': 5,
         'training': 6, 'pipeline': 7, 'trained': 8, 'main': 9}
MAX_LINES = 420


def _modules(folder):
  for directory, _, names in os.walk(folder):
    for name in sorted(names):
      if name.endswith('.py'):
        yield os.path.join(directory, name)


def _room(path_or_module: str) -> str:
  """'sppnet_jax.detection.training.svm' or its file -> 'training'."""
  parts = path_or_module.replace(os.sep, '.').split('.')
  parts = parts[parts.index('detection') + 1:]
  return parts[0] if parts else ''


def _imports(path):
  tree = ast.parse(open(path, encoding='utf-8').read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      if node.module in ('sppnet_jax.detection',):
        yield from (f'{node.module}.{alias.name}' for alias in node.names)
      else:
        yield node.module


def test_rooms_import_only_rooms_below_them():
  wrong = []
  for path in _modules(DETECTION):
    if os.path.basename(path) == '__init__.py' and (
        os.path.dirname(path) == DETECTION):
      continue  # the package's public API re-exports from every room
    room = _room(os.path.relpath(path, PACKAGE)[:-len('.py')])
    for module in _imports(path):
      if module.startswith('sppnet_jax.classification') and room != 'backbone':
        wrong.append(f'{path}: {module} (only backbone.py uses classification)')
      if not module.startswith('sppnet_jax.detection.'):
        continue
      other = _room(module)
      if other != room and RANKS[other] >= RANKS[room]:
        wrong.append(f'{path} ({room}) imports {module} ({other})')
  assert not wrong, '\n'.join(wrong)


def test_every_room_is_ranked_and_documented():
  rooms = {name[:-3] if name.endswith('.py') else name
           for name in os.listdir(DETECTION)
           if name != '__init__.py' and not name.startswith('__')}
  assert rooms == set(RANKS)
  for name in rooms:
    init = os.path.join(DETECTION, name, '__init__.py')
    if os.path.isdir(os.path.join(DETECTION, name)):
      assert ast.get_docstring(ast.parse(open(init).read())), init


def test_no_library_module_is_too_long():
  long = [f'{p}: {n} lines' for p in _modules(PACKAGE)
          for n in [len(open(p, encoding='utf-8').readlines())]
          if n > MAX_LINES]
  assert not long, '\n'.join(long)


# The package's layers, bottom to top: a module may import only its own
# layer and those below it (detection loads a classification backbone; the
# transfer task stands on both).
LAYERS = {'core': 0, 'classification': 1, 'detection': 2, 'transfer': 3}


def test_the_tasks_stand_on_the_core_and_transfer_on_both():
  wrong = []
  for layer, rank in LAYERS.items():
    for path in _modules(os.path.join(PACKAGE, layer)):
      for module in _imports(path):
        parts = module.split('.')
        other = parts[1] if parts[0] == 'sppnet_jax' and len(parts) > 1 else ''
        if other in LAYERS and LAYERS[other] > rank:
          wrong.append(f'{path} ({layer}) imports {module} ({other})')
  assert not wrong, '\n'.join(wrong)
