"""Selective-search region proposals of one image: the settings, OpenCV's
searches and the paper's ranking.

SPP-net (like R-CNN) scores ~2,000 selective-search boxes per image, "fast"
mode. `selective_search` runs OpenCV's implementation
(`cv2.ximgproc.segmentation`); `store.py` keeps them, one file per image, and
`job.py` computes a split's in parallel and resumably.

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
"""

from __future__ import annotations

import dataclasses
import hashlib

import cv2
import numpy as np

from sppnet_jax.errors import ConfigError, DataError

COLOR_SPACES = ('hsv', 'lab')
# OpenCV's order in switchToSelectiveSearchFast: the similarity is a float sum,
# so the order of its terms can decide near-ties between merges.
_STRATEGY_PARTS = ('color', 'fill', 'texture', 'size')


def is_int(value) -> bool:
  """An integer that is not a bool."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return is_int(value) or isinstance(value, (float, np.floating))


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
    if not all(is_int(k) and k > 0 for k in self.ks):
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
        is_int(self.min_segment_size) and self.min_segment_size >= 1):
      raise ConfigError('selective search min_segment_size must be >= 1 or '
                        f'None (= k), got {self.min_segment_size}.')
    if not _is_number(self.min_side) or not self.min_side >= 0:
      raise ConfigError(f'selective search min_side must be >= 0, got '
                        f'{self.min_side}.')
    if not is_int(self.seed) or self.seed < 0:
      raise ConfigError(f'selective search seed must be an integer >= 0, got '
                        f'{self.seed}.')
    if self.max_boxes is not None and not (is_int(self.max_boxes)
                                           and self.max_boxes >= 1):
      raise ConfigError('selective search max_boxes must be >= 1 or None, got '
                        f'{self.max_boxes}.')


RCNN_FAST = SelectiveSearchSettings()
OPENCV_FAST = SelectiveSearchSettings(ks=(150, 300, 450), min_segment_size=100)



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
