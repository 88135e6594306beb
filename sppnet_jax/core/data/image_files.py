"""Image files named on the command line (predict and detect modes): folders
expanded to their images, and each file decoded or reported in one line, so
that one unreadable file among many is skipped, not fatal."""

import os
import re
from typing import Iterable

import numpy as np
import tensorflow as tf

from sppnet_jax.core.data import image_ops


def expand_paths(paths: Iterable[str]) -> list[str]:
  """Files as given, folders as their image files (sorted)."""
  out = []
  for path in paths:
    if os.path.isdir(path):
      out.extend(sorted(os.path.join(path, name) for name in os.listdir(path)
                        if name.lower().endswith(image_ops.IMAGE_EXTENSIONS)))
    else:
      out.append(path)
  return out


def read_image(path: str) -> tuple[np.ndarray | None, str]:
  """(uint8 RGB image, '') or (None, 'not a readable image (why)')."""
  try:
    return np.asarray(image_ops.decode_image_file(path)), ''
  except (tf.errors.OpError, ValueError) as error:
    message = getattr(error, 'message', str(error)).strip()
    message = re.sub(r'\{\{.*?\}\}\s*', '', message).split(' [Op:')[0]
    message = message.splitlines()[0] if message else ''
    return None, (f'not a readable image ({message})' if message
                  else 'not a readable image')
