"""The files the detection stages leave on disk, and how they are named,
written and read (every stage uses these and no other writer):

* `write_atomically`: each file is written whole (a temporary file next to it,
  flushed and fsynced, then renamed), so a run killed at any moment finds
  either a stage's complete result or none, and redoes only what is missing.
  A kill leaves at most `.<name>.<random>.tmp` files, never a partial file
  under a valid name.
* `save_npz` / `load_npz`: arrays in one `.npz`; a missing, unreadable or
  incomplete file is one line (`DataError`) saying what to do.
* `record_settings`: the JSON record of how a folder's files were made
  (proposals, the conv5 cache); a folder made otherwise is refused with the
  fields that differ, so files of two settings never mix.
* `file_name_of` / `image_id_of_file_name`: per-image files are
  `<name>.npz`, where <name> is the image id with every character outside
  [a-z0-9_-] percent-encoded as the %XX (uppercase hex) of its UTF-8 bytes:
  '000005' -> '000005.npz', 'train/Cat 1.jpg' -> 'train%2F%43at%201%2Ejpg.npz'.
  The mapping is reversible (URL unquoting) and safe: no '/', no leading dot,
  and no two ids whose names differ only in case (case-insensitive file
  systems).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.parse
import zipfile
import zlib

import numpy as np

from sppnet_jax.errors import ConfigError, DataError

# File systems allow 255 bytes: room for '.npz' and a temporary name's 18 more.
_MAX_NAME_BYTES = 230
_KEEP = re.compile(r'[a-z0-9_-]')
# What np.load raises on a damaged file.
UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
              zlib.error)


def one_line(error: BaseException) -> str:
  """`Type: message` of an exception on one line (for wrapping it)."""
  return ' '.join(f'{type(error).__name__}: {error}'.split())


def write_atomically(path: str, write) -> None:
  """Calls write(binary file) on a temporary file next to `path`, then renames
  it to `path`: readers see the old file or the whole new one, never a part.
  Creates the folder."""
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


def save_npz(path: str, *, compressed: bool = False, **arrays) -> None:
  """np.savez (or savez_compressed) to `path`, atomically."""
  save = np.savez_compressed if compressed else np.savez
  write_atomically(path, lambda f: save(f, **arrays))


def load_npz(path: str, keys, *, what: str = 'file',
             remake: str = 'rerun --mode=train, which remakes it') -> dict:
  """The arrays `keys` of the file at `path` (`keys` may be a function of
  the file's array names returning those to read), or a one-line DataError
  about `what` the file holds that ends with `remake` (how to make it again)."""
  try:
    with np.load(path, allow_pickle=False) as f:
      names = list(f.files)
      wanted = keys(names) if callable(keys) else keys
      arrays = {k: f[k] for k in wanted if k in names}
  except FileNotFoundError as error:
    raise DataError(f'no {what} at {path}: {remake}.') from error
  except UNREADABLE as error:
    raise DataError(f'the {what} at {path} is unreadable ({one_line(error)}): '
                    f'delete it and {remake}.') from error
  missing = [k for k in wanted if k not in arrays]
  if missing:
    raise DataError(f'the {what} at {path} lacks {missing} (it has '
                    f'{sorted(names)}): delete it and {remake}.')
  return arrays


def record_settings(directory: str, file_name: str, settings: dict,
                    what: str) -> None:
  """Writes `settings` (JSON-ready) as `directory/file_name`, atomically, or
  checks the record already there: other settings raise a one-line
  ConfigError naming each field that differs (`what`: the folder's files,
  e.g. 'proposals')."""
  path = os.path.join(directory, file_name)
  wanted = json.loads(json.dumps(settings))
  if os.path.isfile(path):
    try:
      with open(path, encoding='utf-8') as f:
        saved = json.load(f)
    except (OSError, ValueError) as error:
      raise DataError(f'{path} is unreadable ({one_line(error)}): delete it if '
                      f'the {what} there match the settings.') from error
    if saved != wanted:
      changed = sorted(k for k in set(saved) | set(wanted)
                       if saved.get(k) != wanted.get(k))
      changes = ', '.join(f'{k}: {saved.get(k)!r} -> {wanted.get(k)!r}'
                          for k in changed)
      raise ConfigError(f'{directory} holds {what} made with other settings '
                        f'({changes}): use another folder (or --workdir), or '
                        'delete that one to remake them.')
    return
  text = json.dumps(wanted, indent=1, sort_keys=True).encode()
  write_atomically(path, lambda f: f.write(text))


def file_name_of(image_id: str) -> str:
  """The file name of an image's per-image file, '<encoded id>.npz' (module
  docstring)."""
  if not isinstance(image_id, str) or not image_id:
    raise DataError(f'an image id must be a non-empty string, got '
                    f'{image_id!r}.')
  name = ''.join(c if _KEEP.fullmatch(c) else
                 ''.join(f'%{b:02X}' for b in c.encode('utf-8'))
                 for c in image_id)
  if len(name) > _MAX_NAME_BYTES:
    raise DataError(f'image id {image_id[:60]!r}... is too long for a file '
                    f'name ({len(name)} bytes encoded, at most '
                    f'{_MAX_NAME_BYTES}): use shorter ids.')
  return name + '.npz'


def image_id_of_file_name(file_name: str) -> str:
  """The image id of a per-image file name (the inverse of `file_name_of`)."""
  stem = os.path.basename(file_name)
  stem = stem[:-len('.npz')] if stem.endswith('.npz') else stem
  return urllib.parse.unquote(stem, errors='strict')


def image_ids_in(directory: str) -> list[str]:
  """The ids of the per-image files in `directory`, in file-name order (the
  same on every process); [] when there is no such folder."""
  if not os.path.isdir(directory):
    return []
  names = sorted(n for n in os.listdir(directory)
                 if n.endswith('.npz') and not n.startswith('.'))
  return [image_id_of_file_name(n) for n in names]
