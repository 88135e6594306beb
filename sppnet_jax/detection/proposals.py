"""Selective-search region proposals, computed once per image, cached on disk.

SPP-net (like R-CNN) scores ~2,000 selective-search boxes per image, "fast"
mode. `selective_search` runs OpenCV's implementation
(`cv2.ximgproc.segmentation`), `ProposalStore` keeps one file per image, and
`compute_proposals` fills a store in parallel and resumes where a killed job
stopped.

Settings. `SelectiveSearchSettings()` (= `RCNN_FAST`) is R-CNN's fast mode
(rbgirshick/rcnn `selective_search_boxes.m`) as far as OpenCV allows: the HSV
and Lab colour spaces, Felzenszwalb-Huttenlocher k in {50, 100} with the
minimum segment size = k and sigma 0.8, and the two similarity strategies
colour+texture+size+fill and texture+size+fill: 2 x 2 x 2 = 8 hierarchical
groupings (in 4 OpenCV searches, one per colour space and k), whose boxes are
pooled. Boxes with a side under 20 pixels are dropped (R-CNN's `minBoxWidth`;
Fast R-CNN used R-CNN's files as they were, py-faster-rcnn later also dropped
boxes under 2 px), then duplicates, and at most `max_boxes` = 2000 are kept
(R-CNN kept all; its fast mode averages about 2,000 on VOC). `OPENCV_FAST` is what OpenCV's `switchToSelectiveSearchFast()`
does (k in {150, 300, 450}, OpenCV's default minimum segment size 100) with the
same filtering, for comparison.

What differs from R-CNN's MATLAB code (Uijlings et al.'s IJCV release), read
in opencv_contrib `modules/ximgproc/src/selectivesearchsegmentation.cpp`:
  * the initial segmentation is OpenCV's `GraphSegmentation`, not the
    authors' `mexFelzenSegmentIndex`;
  * texture histograms use Scharr derivatives of each channel and of the
    channel rotated by 45 degrees (8 directions, 10 bins), not Gaussian
    derivatives with sigma 1;
  * colour histograms bin every 8-bit channel over 0..255 (25 bins), so
    OpenCV's hue (0..179) fills 18 of its 25 bins;
  * the ranking (below).

Ranking and determinism. The paper ranks the boxes of each hierarchy by
v = RND x i, where i is the box's position counted from the top of the
hierarchy (1 = the whole image), pools all hierarchies, sorts by v and drops
duplicates (keeping the smallest v): large, often-found regions come first,
but any box can. OpenCV inverts this: it gives each region rand() x level with
level 1 for the initial segments, so small regions come first; it calls C's
`rand()`, whose process-wide state advances with every call, which is why
`process()` returns the same set in a different order on each call
(`cv2.setRNGSeed` does not touch it; `srand` would, but it is global state
shared with every thread of the process). Here OpenCV's order is ignored and
the paper's ranking is recomputed per search: each (colour space, k) runs as
one `process()` with all the strategies, which share its initial segmentation;
i is approximated by the box's area rank among that search's distinct boxes
(1 + the number of them with a larger area: OpenCV reports neither the merge
order nor the level), and a box found by several searches keeps its smallest
v. (The MATLAB code draws per strategy, so a box that both strategies of one
segmentation find gets two chances there and one here; one search per strategy
would repeat each segmentation: ~50% more time on the scenes of
benchmarks/proposals.py.) RND: search s (numbered from 0 over colour spaces,
then ks, in the settings' order) draws
`np.random.default_rng([seed, digest, s]).random(n)` for its n distinct boxes
in ascending (y0, x0, y1, x1) order, where digest is the 8-byte BLAKE2b
(person b'sppnet-ss') of the pixel bytes then the shape as int64, read
little-endian. The result depends on nothing but the pixels and the settings:
it is the same across calls, call orders, processes and runs, and truncating it
keeps a sensible subset (a lexicographic sort before truncating would keep the
top-left).

Store layout (also the format of user-supplied proposals): one file
`<name>.npz` per image in one directory, where <name> is the image id with
every character outside [a-z0-9_-] percent-encoded as the %XX (uppercase hex)
of its UTF-8 bytes: '000005' -> '000005.npz', 'train/Cat 1.jpg' ->
'train%2F%43at%201%2Ejpg.npz'. The mapping is reversible
(`image_id_of_file_name` = URL unquoting) and safe: no '/', no leading dot, and
no two ids whose names differ only in case (case-insensitive file systems).
`file_name_of(image_id)` gives the name to write. Each file holds

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

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import re
import tempfile
import time
from typing import Iterable
import urllib.parse
import zipfile
import zlib

from absl import logging
import cv2
import numpy as np

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection import stage_files
from sppnet_jax.errors import ConfigError, DataError

COLOR_SPACES = ('hsv', 'lab')
# OpenCV's order in switchToSelectiveSearchFast: the similarity is a float sum,
# so the order of its terms can decide near-ties between merges.
_STRATEGY_PARTS = ('color', 'fill', 'texture', 'size')
BOX_FORMATS = ('yxyx', 'voc', 'xyxy')
SETTINGS_FILE = 'selective_search.json'
# File systems allow 255 bytes: room for '.npz' and a temporary name's 18 more.
_MAX_NAME_BYTES = 230


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return _is_int(value) or isinstance(value, (float, np.floating))


@dataclasses.dataclass(frozen=True)
class SelectiveSearchSettings:
  """How proposals are made (defaults: R-CNN's fast mode; module docstring).

  Attributes:
    color_spaces: images to segment and group, from 'hsv', 'lab'.
    ks: Felzenszwalb-Huttenlocher thresholds k of the initial segmentations.
    sigma: Gaussian smoothing before the initial segmentation.
    min_segment_size: smallest initial segment in pixels; None = k (R-CNN).
    strategies: similarity strategies, each a '+'-joined subset of 'color',
      'texture', 'size', 'fill' (equal weights).
    min_side: boxes with a height or width under this (pixels) are dropped.
    max_boxes: at most this many boxes, the best ranked; None keeps all.
    seed: with the image's pixels, seeds the ranking's randomness.
  """
  color_spaces: tuple[str, ...] = ('hsv', 'lab')
  ks: tuple[int, ...] = (50, 100)
  sigma: float = 0.8
  min_segment_size: int | None = None
  strategies: tuple[str, ...] = ('color+texture+size+fill',
                                 'texture+size+fill')
  min_side: float = 20
  max_boxes: int | None = 2000
  seed: int = 0

  def __post_init__(self):
    for name in ('color_spaces', 'ks', 'strategies'):
      value = getattr(self, name)
      if isinstance(value, str) or not value:
        raise ConfigError(f'selective search {name} must be a non-empty list, '
                          f'got {value!r}.')
      object.__setattr__(self, name, tuple(value))
    bad = [c for c in self.color_spaces if c not in COLOR_SPACES]
    if bad:
      raise ConfigError(f'selective search color_spaces {bad} unknown: use '
                        f'{COLOR_SPACES}.')
    if not all(_is_int(k) and k > 0 for k in self.ks):
      raise ConfigError(f'selective search ks must be positive integers, got '
                        f'{self.ks}.')
    object.__setattr__(self, 'ks', tuple(int(k) for k in self.ks))
    for strategy in self.strategies:
      parts = strategy.split('+')
      if (not set(parts) <= set(_STRATEGY_PARTS)
          or len(set(parts)) != len(parts)):
        raise ConfigError(f'selective search strategy {strategy!r} must join '
                          f'distinct parts of {_STRATEGY_PARTS} with "+".')
    if not _is_number(self.sigma) or not self.sigma > 0:
      raise ConfigError(f'selective search sigma must be > 0, got '
                        f'{self.sigma}.')
    if self.min_segment_size is not None and not (
        _is_int(self.min_segment_size) and self.min_segment_size >= 1):
      raise ConfigError('selective search min_segment_size must be >= 1 or '
                        f'None (= k), got {self.min_segment_size}.')
    if not _is_number(self.min_side) or not self.min_side >= 0:
      raise ConfigError(f'selective search min_side must be >= 0, got '
                        f'{self.min_side}.')
    if not _is_int(self.seed) or self.seed < 0:
      raise ConfigError(f'selective search seed must be an integer >= 0, got '
                        f'{self.seed}.')
    if self.max_boxes is not None and not (_is_int(self.max_boxes)
                                           and self.max_boxes >= 1):
      raise ConfigError('selective search max_boxes must be >= 1 or None, got '
                        f'{self.max_boxes}.')


RCNN_FAST = SelectiveSearchSettings()
OPENCV_FAST = SelectiveSearchSettings(ks=(150, 300, 450), min_segment_size=100)


# -----------------------------------------------------------------------------
# Selective search on one image.
# -----------------------------------------------------------------------------


def _check_image(image) -> np.ndarray:
  image = np.asarray(image)
  if (image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
      or not image.size):
    raise DataError(f'selective search needs a uint8 (H, W, 3) RGB image, got '
                    f'{image.dtype} {image.shape}: decode it with 3 channels.')
  return np.ascontiguousarray(image)


def _color_image(image: np.ndarray, space: str) -> np.ndarray:
  """The RGB image in `space`, 8-bit, as OpenCV's presets convert their BGR
  base image (COLOR_BGR2HSV on BGR = COLOR_RGB2HSV on RGB)."""
  code = {'hsv': cv2.COLOR_RGB2HSV, 'lab': cv2.COLOR_RGB2Lab}[space]
  return cv2.cvtColor(image, code)


def _strategy(spec: str):
  segmentation = cv2.ximgproc.segmentation
  makers = {
      'color': segmentation.createSelectiveSearchSegmentationStrategyColor,
      'fill': segmentation.createSelectiveSearchSegmentationStrategyFill,
      'texture': segmentation.createSelectiveSearchSegmentationStrategyTexture,
      'size': segmentation.createSelectiveSearchSegmentationStrategySize,
  }
  parts = spec.split('+')
  return segmentation.createSelectiveSearchSegmentationStrategyMultiple(
      *[makers[p]() for p in _STRATEGY_PARTS if p in parts])


def _search_boxes(colour: np.ndarray, k: int, min_size: int, sigma: float,
                  strategies: tuple[str, ...]) -> np.ndarray:
  """The distinct boxes of the hierarchical groupings of one initial
  segmentation, (n, 4) int64 (y0, x0, y1, x1), sorted (a canonical order:
  OpenCV's own order is random)."""
  segmentation = cv2.ximgproc.segmentation
  search = segmentation.createSelectiveSearchSegmentation()
  search.addImage(colour)
  graph = segmentation.createGraphSegmentation()
  graph.setK(float(k))
  graph.setSigma(float(sigma))
  graph.setMinSize(int(min_size))
  search.addGraphSegmentation(graph)
  for strategy in strategies:
    search.addStrategy(_strategy(strategy))
  rects = np.asarray(search.process(), np.int64).reshape(-1, 4)  # x, y, w, h
  boxes = np.stack([rects[:, 1], rects[:, 0], rects[:, 1] + rects[:, 3],
                    rects[:, 0] + rects[:, 2]], 1)
  return np.unique(boxes, axis=0)


def _image_digest(image: np.ndarray) -> int:
  digest = hashlib.blake2b(image.tobytes(), digest_size=8,
                           person=b'sppnet-ss')
  digest.update(np.asarray(image.shape, np.int64).tobytes())
  return int.from_bytes(digest.digest(), 'little')


def selective_search(image, settings: SelectiveSearchSettings = RCNN_FAST
                     ) -> np.ndarray:
  """Region proposals of one image, best ranked first.

  Args:
    image: uint8 (H, W, 3) RGB.
    settings: see `SelectiveSearchSettings`.

  Returns:
    float32 (N, 4) boxes (y0, x0, y1, x1), continuous pixel coordinates inside
    the image, distinct, each side >= settings.min_side, N <= max_boxes, in the
    order of the paper's pseudo-random ranking (module docstring): a function
    of the pixels and the settings only.
  """
  image = _check_image(image)
  digest = _image_digest(image)
  found, values = [], []
  search_index = 0
  for space in settings.color_spaces:
    colour = _color_image(image, space)
    for k in settings.ks:
      min_size = k if settings.min_segment_size is None else (
          settings.min_segment_size)
      boxes = _search_boxes(colour, k, min_size, settings.sigma,
                            settings.strategies)
      area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
      # 1 + the number of boxes with a larger area: ties share a position.
      by_area = np.sort(area)
      position = 1 + area.size - np.searchsorted(by_area, area, side='right')
      rng = np.random.default_rng([settings.seed, digest, search_index])
      found.append(boxes)
      values.append(rng.random(boxes.shape[0]) * position)
      search_index += 1
  boxes = np.concatenate(found)
  values = np.concatenate(values)
  unique, inverse = np.unique(boxes, axis=0, return_inverse=True)
  best = np.full(unique.shape[0], np.inf)
  np.minimum.at(best, inverse.reshape(-1), values)
  order = np.argsort(best, kind='stable')  # ties (never seen): sorted boxes
  ranked = unique[order]
  heights = ranked[:, 2] - ranked[:, 0]
  widths = ranked[:, 3] - ranked[:, 1]
  ranked = ranked[(heights >= settings.min_side)
                  & (widths >= settings.min_side)]
  if settings.max_boxes is not None:
    ranked = ranked[:settings.max_boxes]
  return ranked.astype(np.float32)


# -----------------------------------------------------------------------------
# The per-image store.
# -----------------------------------------------------------------------------

_KEEP = re.compile(r'[a-z0-9_-]')


def file_name_of(image_id: str) -> str:
  """The store's file name of an image, '<encoded id>.npz' (module
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
  """The image id of a store's file name (the inverse of `file_name_of`)."""
  stem = os.path.basename(file_name)
  stem = stem[:-len('.npz')] if stem.endswith('.npz') else stem
  return urllib.parse.unquote(stem, errors='strict')


def _one_line(error: BaseException) -> str:
  return ' '.join(f'{type(error).__name__}: {error}'.split())


def _string(array) -> str:
  """A one-element str or bytes array (as np.savez stores a string) -> str."""
  value = array.item() if array.size == 1 else array
  return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(
      value)


def _checked_boxes(boxes, where: str) -> np.ndarray:
  """(N, 4) finite numbers -> float32, or a one-line DataError about `where`."""
  boxes = np.asarray(boxes)
  if boxes.size == 0:
    return np.zeros((0, 4), np.float32)
  if boxes.dtype.kind not in 'iuf':
    raise DataError(f'{where}: boxes must be numbers, got dtype {boxes.dtype}.')
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise DataError(f'{where}: boxes must be (N, 4), got {boxes.shape}.')
  with np.errstate(over='ignore'):
    boxes = boxes.astype(np.float32)
  if not np.all(np.isfinite(boxes)):
    raise DataError(f'{where}: {np.sum(~np.isfinite(boxes).all(1))} box(es) '
                    'hold NaN or infinite coordinates (in float32).')
  return boxes


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
    return os.path.join(self.directory, file_name_of(image_id))

  def has(self, image_id: str) -> bool:
    return os.path.isfile(self.path(image_id))

  def save(self, image_id: str, boxes) -> None:
    """Writes float32 (N, 4) library-convention boxes, atomically."""
    path = self.path(image_id)
    where = f'proposals of image {image_id!r}'
    boxes = _checked_boxes(boxes, where)
    _check_not_reversed(boxes, boxes, where, ' (boxes are (y0, x0, y1, x1))')
    stage_files.write_atomically(
        path, lambda f: np.savez_compressed(f, boxes=boxes))

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
          'sppnet_jax.detection.proposals.compute_proposals), or write that '
          "file as sppnet_jax/detection/proposals.py's docstring describes.")
    where = f'proposal file {path} (image {image_id!r})'
    try:
      with np.load(path, allow_pickle=False) as data:
        if 'boxes' not in data.files:
          raise DataError(f'{where} has no "boxes" array (it has '
                          f'{sorted(data.files)}).')
        raw = data['boxes']
        box_format = (_string(data['box_format']) if 'box_format' in data.files
                      else 'yxyx')
    except DataError:
      raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
            zlib.error) as error:
      raise DataError(f'{where} is unreadable ({_one_line(error)}): delete it '
                      'and compute it again.') from error
    if box_format not in BOX_FORMATS:
      raise DataError(f'{where}: box_format {box_format!r} unknown; use one of '
                      f'{BOX_FORMATS}.')
    raw = _checked_boxes(raw, where)
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


# -----------------------------------------------------------------------------
# Filling a store, in parallel, resumable.
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProposalStats:
  """What one `compute_proposals` call did."""
  computed: int  # images whose proposals were computed and saved now
  cached: int  # images already in the store (or repeated in `examples`)
  boxes: int  # boxes saved now, over all computed images
  seconds: float


def _record_settings(store: ProposalStore, settings) -> None:
  """Writes the settings next to the proposals once, and refuses to mix
  proposals of different settings in one directory."""
  wanted = json.loads(json.dumps(dataclasses.asdict(settings)))
  path = os.path.join(store.directory, SETTINGS_FILE)
  if os.path.isfile(path):
    try:
      with open(path) as f:
        found = json.load(f)
    except (OSError, ValueError) as error:
      raise DataError(f'{path} is unreadable ({_one_line(error)}): delete it '
                      'if the proposals there match the settings.') from error
    if found != wanted:
      raise ConfigError(
          f'{store.directory} holds proposals made with other selective search '
          f'settings ({found}, not {wanted}): use another directory, or delete '
          'that one to recompute.')
    return
  os.makedirs(store.directory, exist_ok=True)
  handle, temp = tempfile.mkstemp(dir=store.directory,
                                  prefix=f'.{SETTINGS_FILE}.', suffix='.tmp')
  with os.fdopen(handle, 'w') as f:
    json.dump(wanted, f, indent=1, sort_keys=True)
  os.replace(temp, path)


def _start_worker() -> None:
  cv2.setNumThreads(1)  # one image per process: no nested thread pools


def _propose(job):
  image_id, image, settings = job
  return image_id, selective_search(image, settings)


def compute_proposals(examples: Iterable[tuple[str, np.ndarray]],
                      store: ProposalStore,
                      settings: SelectiveSearchSettings = RCNN_FAST, *,
                      num_workers: int, log_every: int = 100) -> ProposalStats:
  """Computes and saves the proposals of every image not yet in `store`.

  A killed job resumes where it stopped: each image's file is saved (atomically)
  as soon as it is computed, and images with a file are skipped. The settings
  are recorded in the directory (`SETTINGS_FILE`); other settings there raise a
  ConfigError.

  Args:
    examples: (image_id, uint8 (H, W, 3) RGB image) pairs, e.g. this process's
      shard; images are pulled only as workers free up, so at most
      2 * num_workers images are held at once.
    store: where the proposals go.
    settings: see `SelectiveSearchSettings`.
    num_workers: worker processes ('spawn': the caller may hold JAX / TF
      threads, which fork does not copy); 0 computes in this process.
    log_every: a progress line every this many computed images.

  Returns:
    The counts and the wall time.
  """
  if not _is_int(num_workers) or num_workers < 0:
    raise ConfigError(f'num_workers must be an integer >= 0, got '
                      f'{num_workers!r}.')
  if not _is_int(log_every) or log_every < 1:
    raise ConfigError(f'log_every must be an integer >= 1, got {log_every!r}.')
  _record_settings(store, settings)
  start = time.perf_counter()
  counts = {'computed': 0, 'cached': 0, 'boxes': 0}
  pending_ids = set()

  def saved(image_id, boxes):
    store.save(image_id, boxes)
    pending_ids.discard(image_id)
    counts['computed'] += 1
    counts['boxes'] += len(boxes)
    if counts['computed'] % log_every == 0:
      elapsed = time.perf_counter() - start
      logging.info('Proposals: %d images computed, %d cached, %.2f images/s.',
                   counts['computed'], counts['cached'],
                   counts['computed'] / elapsed)

  def todo():
    for image_id, image in examples:
      if image_id in pending_ids or store.has(image_id):
        counts['cached'] += 1
        continue
      pending_ids.add(image_id)
      yield image_id, image

  if num_workers == 0:
    for image_id, image in todo():
      saved(image_id, selective_search(image, settings))
  else:
    context = multiprocessing.get_context('spawn')
    in_flight = set()
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=context, initializer=_start_worker) as pool:
      try:
        for image_id, image in todo():
          in_flight.add(pool.submit(_propose, (image_id, image, settings)))
          # Save whatever is done at each step; block only to keep at most
          # 2 * num_workers images in flight (memory stays flat).
          done = {f for f in in_flight if f.done()}
          if len(in_flight) - len(done) >= 2 * num_workers:
            done, _ = concurrent.futures.wait(
                in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
          in_flight -= done
          for future in done:
            saved(*future.result())
        for future in concurrent.futures.as_completed(in_flight):
          saved(*future.result())
      except BaseException:
        for future in in_flight:
          future.cancel()
        raise
  seconds = time.perf_counter() - start
  logging.info('Proposals in %s: %d images computed (%.2f images/s), %d '
               'cached.',
               store.directory, counts['computed'],
               counts['computed'] / max(seconds, 1e-9), counts['cached'])
  return ProposalStats(seconds=seconds, **counts)
