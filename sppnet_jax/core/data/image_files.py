"""Image files named on the command line (predict and detect modes): checked
before anything loads (`named_images`), folders expanded to their images, and
each file decoded or reported in one line, so that one unreadable file among
many is skipped, not fatal.

TensorFlow is imported only to decode (`read_image`): checking the named files
takes milliseconds, not TensorFlow's seconds of start-up.

`images_of` is the Python API's way in (`load_classifier`, `load_detector`):
arrays and file paths alike, where an unreadable file is an error naming it."""

import os
import re
from typing import Iterable

import numpy as np

from sppnet_jax.errors import DataError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')


def named_images(paths: Iterable[str]) -> list[str]:
  """The image files of the files and folders a user named (`expand_paths`),
  for --mode=predict and detect alike; a DataError (one line) if nothing is
  named, a path does not exist, a folder cannot be listed or holds no image."""
  paths = list(paths)
  if not paths:
    raise DataError('no images given: pass image files or folders as '
                    'arguments (or --images=a.jpg,photos/).')
  missing = [path for path in paths if not os.path.exists(path)]
  if missing:
    raise DataError(f'no such file or folder: {", ".join(missing)}: name image '
                    'files or folders that exist.')
  try:
    files = expand_paths(paths)
  except OSError as error:
    raise DataError(f'cannot list the folder {error.filename}: '
                    f'{error.strerror}.') from error
  if not files:
    raise DataError(f'no image files ({", ".join(IMAGE_EXTENSIONS)}) in '
                    f'{", ".join(paths)}: pass image files or folders that '
                    'hold some.')
  return files


def expand_paths(paths: Iterable[str]) -> list[str]:
  """Files as given (a file named twice is taken twice, as asked), folders as
  their image files (sorted) that are not named directly or found through an
  earlier folder: a file named both directly and through its folder is taken
  once, where it is named directly."""
  paths = list(paths)
  taken = {os.path.abspath(path) for path in paths if not os.path.isdir(path)}
  out = []
  for path in paths:
    if not os.path.isdir(path):
      out.append(path)
      continue
    for name in sorted(os.listdir(path)):
      file = os.path.join(path, name)
      if (name.lower().endswith(IMAGE_EXTENSIONS)
          and os.path.abspath(file) not in taken):
        taken.add(os.path.abspath(file))
        out.append(file)
  return out


def read_image(path: str) -> tuple[np.ndarray | None, str]:
  """(uint8 RGB image, '') or (None, 'not a readable image (why)')."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.data import image_ops  # pylint: disable=g-import-not-at-top
  try:
    return np.asarray(image_ops.decode_image_file(path)), ''
  except (tf.errors.OpError, ValueError) as error:
    message = getattr(error, 'message', str(error)).strip()
    message = re.sub(r'\{\{.*?\}\}\s*', '', message).split(' [Op:')[0]
    message = message.splitlines()[0] if message else ''
    return None, (f'not a readable image ({message})' if message
                  else 'not a readable image')


def image_of(image, where: str = 'the image') -> np.ndarray:
  """uint8 RGB (H, W, 3) of one image: a file path read (`read_image`), or
  an array checked; a DataError (about `where`, or naming the file) as
  `images_of`."""
  if isinstance(image, (str, os.PathLike)):
    path = os.fspath(image)
    if not os.path.isfile(path):
      raise DataError(f'no such image file: {path}')
    array, error = read_image(path)
    if array is None:
      raise DataError(f'{path}: {error}: pass a JPEG, PNG, GIF or BMP file.')
    return array
  array = np.asarray(image)
  if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or (
      0 in array.shape):
    raise DataError(f'{where} is a {array.dtype} array of shape {array.shape}: '
                    'pass uint8 RGB (height, width, 3) images (e.g. '
                    'np.asarray(PIL.Image.open(f).convert("RGB"))) or file '
                    'paths.')
  return array


def images_of(images) -> list[np.ndarray]:
  """uint8 RGB (H, W, 3) arrays of `images`: one image (a file path or an
  (H, W, 3) array), an (N, H, W, 3) batch, or a list or tuple of images
  (paths and arrays of any sizes, mixed). Files are decoded as the data
  pipelines decode them (`read_image`).

  Raises:
    DataError: a path that is no file or not a readable image (named), or an
      array that is not uint8 RGB.
  """
  if isinstance(images, (str, os.PathLike)):
    return [image_of(images, 'the image')]
  if isinstance(images, (list, tuple)):
    return [image_of(image, f'image {i}') for i, image in enumerate(images)]
  array = np.asarray(images)
  if array.ndim == 4:
    return [image_of(image, f'image {i}') for i, image in enumerate(array)]
  return [image_of(array, 'the image')]
