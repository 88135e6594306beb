"""The files the detection stages leave in the workdir: each written whole
(a temporary file, then a rename), so a run killed at any moment finds either
a stage's complete result or none, and redoes only what is missing.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from sppnet_jax.errors import DataError


def write_atomically(path: str, write) -> None:
  """Calls write(binary file) on a temporary file next to `path`, then renames
  it to `path`: readers see the old file or the whole new one, never a part."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory,
                             prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_npz(path: str, **arrays) -> None:
  """np.savez to `path`, atomically."""
  write_atomically(path, lambda f: np.savez(f, **arrays))


def load_npz(path: str, keys) -> dict:
  """The arrays `keys` of the file at `path`, or a one-line DataError."""
  try:
    with np.load(path, allow_pickle=False) as f:
      missing = [k for k in keys if k not in f.files]
      if missing:
        raise DataError(f'{path} lacks {missing}: it was not written by this '
                        'version; delete it and rerun the stage.')
      return {k: f[k] for k in keys}
  except FileNotFoundError as error:
    raise DataError(f'{path} is missing: run --mode=train to make it.') from error
  except (OSError, ValueError, zipfile.BadZipFile) as error:
    raise DataError(f'{path} is unreadable ({error}): delete it and rerun '
                    '--mode=train, which remakes it.') from error
