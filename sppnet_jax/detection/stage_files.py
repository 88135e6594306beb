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


def save_npz(path: str, **arrays) -> None:
  """np.savez to `path`, atomically."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.npz')
  try:
    with os.fdopen(fd, 'wb') as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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
