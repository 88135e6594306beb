"""The per-image proposal store, which is also the format of user-supplied
proposals.

One file per image in one directory, named by `stage_files.file_name_of`
(the image id percent-encoded: '000005' -> '000005.npz',
'train/Cat 1.jpg' -> 'train%2F%43at%201%2Ejpg.npz'). Each file holds

  * `boxes`: (N, 4) numbers, one box per row (integers are fine);
  * optional `box_format`, a string: 'yxyx' (the default: the library's
    (y0, x0, y1, x1), continuous pixel coordinates, `detection.boxes`), 'voc'
    ((xmin, ymin, xmax, ymax), 1-based inclusive pixel indices, the VOC
    devkit's convention) or 'xyxy' ((x0, y0, x1, y1), continuous).

e.g. `np.savez(file, boxes=b, box_format='voc')`. R-CNN's selective-search
.mat files hold (ymin, xmin, ymax, xmax), 1-based inclusive (Fast R-CNN reads
them with columns (1, 0, 3, 2), minus 1): write `boxes=m[:, [1, 0, 3, 2]]`
with box_format='voc'. Loading converts to the
library convention, rejects NaN, infinite or reversed boxes (with a hint at
`box_format`), clips to the image if the caller gives its size, and drops boxes
with no area. `save` writes the library convention through a temporary file
renamed into place, so a killed job never leaves a partial file under a valid
name; leftovers of a kill are named `.<name>.npz.<random>.tmp` and can be
deleted.
"""

from __future__ import annotations

import os

import numpy as np

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection import stage_files
from sppnet_jax.errors import DataError

BOX_FORMATS = ('yxyx', 'voc', 'xyxy')


def _string(array) -> str:
  """A one-element str or bytes array (as np.savez stores a string) -> str."""
  value = array.item() if array.size == 1 else array
  return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(
      value)


def _check_not_reversed(boxes, raw, where: str, hint: str = '') -> None:
  """A one-line DataError if a box ends before it starts (y1 < y0 or
  x1 < x0); `raw` is what the file holds, quoted in the message."""
  reversed_ = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
  if np.any(reversed_):
    first = int(np.argmax(reversed_))
    raise DataError(f'{where}: {int(reversed_.sum())} reversed box(es) (end '
                    f'before start), e.g. row {first} {raw[first].tolist()}'
                    f'{hint}')


class ProposalStore:
  """One `<file_name_of(image_id)>` .npz of boxes per image in `directory`
  (module docstring). Nothing is created until the first `save`."""

  def __init__(self, directory: str):
    self.directory = os.fspath(directory)

  def path(self, image_id: str) -> str:
    return os.path.join(self.directory, stage_files.file_name_of(image_id))

  def has(self, image_id: str) -> bool:
    return os.path.isfile(self.path(image_id))

  def save(self, image_id: str, boxes) -> None:
    """Writes float32 (N, 4) library-convention boxes, atomically."""
    path = self.path(image_id)
    where = f'proposals of image {image_id!r}'
    boxes = box_lib.checked(boxes, where)
    _check_not_reversed(boxes, boxes, where, ' (boxes are (y0, x0, y1, x1))')
    stage_files.save_npz(path, compressed=True, boxes=boxes)

  def load(self, image_id: str,
           image_size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 (N, 4) (y0, x0, y1, x1) boxes of the image, converted from the
    file's `box_format`; clipped to image_size = (height, width) if given;
    boxes with no area dropped."""
    path = self.path(image_id)
    if not os.path.isfile(path):
      raise DataError(
          f'no proposals for image {image_id!r} in {self.directory} (expected '
          f'{os.path.basename(path)}): compute them (python main.py '
          '--config=configs/detection/... --mode=proposals, or '
          'sppnet_jax.detection.proposals.job.compute_proposals), or write that '
          "file as sppnet_jax/detection/proposals/store.py's docstring "
          'describes.')
    where = f'proposal file {path} (image {image_id!r})'
    data = stage_files.load_npz(
        path, lambda files: ['boxes'] + [k for k in ['box_format'] if k in files],
        what=f'proposal file of image {image_id!r}',
        remake='compute it again, or write its "boxes" array as the store\'s '
        'docstring says')
    raw = data['boxes']
    box_format = (_string(data['box_format']) if 'box_format' in data
                  else 'yxyx')
    if box_format not in BOX_FORMATS:
      raise DataError(f'{where}: box_format {box_format!r} unknown; use one of '
                      f'{BOX_FORMATS}.')
    raw = box_lib.checked(raw, where)
    if box_format == 'voc':
      boxes = box_lib.from_voc(raw)
    elif box_format == 'xyxy':
      boxes = box_lib.from_xyxy(raw)
    else:
      boxes = raw
    _check_not_reversed(boxes, raw, f'{where} read as {box_format!r}',
                        ': is box_format right?')
    if image_size is not None:
      boxes = box_lib.clip_to_image(boxes, *image_size)
    return boxes[box_lib.areas(boxes) > 0].astype(np.float32)
