"""Making a generated data set folder once, atomically.

The embedded sets are drawn on the first run and reused after. The set is
written into a temporary folder next to its root, a completion marker (a small
json of how it was made) is written last, and the folder is renamed into place:
a crash half-way never leaves a partial set, a folder without the marker is
never taken for a set, and when two processes race, the second rename fails and
that process uses the winner's set. A folder we did not make is never
overwritten; an empty one is replaced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Mapping

from sppnet_jax.errors import DataError

MARKER = '.complete'


def default_root(env_var: str, cache_name: str) -> str:
  """`$env_var` if set, else `~/.cache/sppnet_jax/<cache_name>`."""
  env = os.environ.get(env_var)
  if env:
    return os.path.expanduser(env)
  return os.path.join(os.path.expanduser('~'), '.cache', 'sppnet_jax',
                      cache_name)


def is_complete(root: str) -> bool:
  return os.path.isfile(os.path.join(root, MARKER))


def read_marker(root: str) -> dict | None:
  """The marker's json, or None if it is missing or unreadable."""
  try:
    with open(os.path.join(root, MARKER)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def build_once(root: str, write: Callable[[str], Mapping[str, Any]], *,
               settings: Mapping[str, Any], description: str) -> str:
  """Makes the data set at `root` with `write` unless it is already there.

  Args:
    root: the set's folder (absolute or with ~).
    write: `write(folder)` fills the empty `folder` and returns the marker's
      contents (json-serialisable).
    settings: what the set is asked to be (version, sizes): a complete set whose
      marker says otherwise is used as it is, with a warning.
    description: what is made, for the log ('the embedded data set (...)').

  Returns:
    The absolute root folder, complete.

  Raises:
    DataError: `root` exists, is not empty, and holds no complete set (we never
      overwrite a folder we did not make).
  """
  root = os.path.abspath(os.path.expanduser(root))
  if is_complete(root):
    _check_settings(root, settings)
    return root
  if os.path.isdir(root) and os.listdir(root):
    raise DataError(
        f'{root} exists but holds no complete generated data set (no {MARKER} '
        'marker): delete it, or point --config.data_dir at an empty or new '
        'folder.')
  parent = os.path.dirname(root)
  os.makedirs(parent, exist_ok=True)
  start = time.time()
  tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(root)}.tmp-', dir=parent)
  try:
    marker = write(tmp)
    with open(os.path.join(tmp, MARKER), 'w') as f:
      json.dump(marker, f)
    try:
      if os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)  # An empty folder (e.g. made by the user) is replaced.
      os.rename(tmp, root)
    except OSError:
      if not is_complete(root):  # Not another process winning the race.
        raise
      logging.info('Another process made %s at %s; using it.', description,
                   root)
      return root
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  logging.info('Made %s at %s in %.1f s.', description, root,
               time.time() - start)
  return root


def _check_settings(root, settings):
  marker = read_marker(root)
  if marker is None:
    return
  got = {k: marker.get(k) for k in settings}
  if got != dict(settings):
    logging.warning('The data set at %s was made with %s, not %s; using it as '
                    'it is (delete the folder to remake it).', root, got,
                    dict(settings))
