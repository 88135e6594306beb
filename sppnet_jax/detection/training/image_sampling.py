"""Image-centric mini-batches of end-to-end detection training (Fast R-CNN's
hierarchical sampling, its section 2.3): each step draws N images and R
regions from each, so that the conv layers of an image serve R regions.

Which regions exist and what they overlap is `sampling.label_regions`' (the
ground-truth boxes added first, IoU without +1, the first box on ties); this
module only chooses, as a pure function of (seed, step):

  rng = numpy.random.default_rng([seed, _STREAM, step])
  images = rng.choice(E, N, replace=False)        # among the E images with
                                                  # at least one candidate
  for each chosen image, in order:
    fg = rng.choice(F, f, replace=False)          # F foreground candidates
    bg = rng.choice(B, b, replace=False)          # B background candidates
  flips = rng.random(N) < 0.5                     # only with `flip`
  scales = rng.integers(0, S, N)                  # only with S > 1 scales

Foreground: max IoU >= fg_threshold; background: max IoU in [bg_low,
fg_threshold) (regions below bg_low are never drawn). Per image f = min(floor(R
* positive_fraction), F) and b = min(R - f, B), as Fast R-CNN's
`_sample_rois`: an image short of background gives fewer than R regions, and
the rest of its R rows are padding (`valid` False). Rows are foreground then
background, each in draw order. Label of a foreground row: its region's label
(class + 1); background 0.

The global batch is the same on every process; process p of P takes images p,
p + P, ... (N a multiple of P), so the shares are disjoint and their union is
the 1-process batch. A resumed run draws exactly the batches it would have
drawn. The generator is PCG64 from `SeedSequence` (NumPy keeps the streams of
`choice`, `random` and `integers` within a version).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from sppnet_jax.detection.training.sampling import RegionLabels
from sppnet_jax.errors import ConfigError, DataError

# Mixed into every step's seed: a stream apart from the region sampler's.
_STREAM = 0xE2E25


@dataclasses.dataclass(frozen=True)
class ImageBatch:
  """One process's share of a step's images and regions (n images).

  images: (n,) int32, index of the image in the sampler's list.
  flips: (n,) bool, the image is mirrored.
  scales: (n,) int32, index into the training scales.
  regions: (n, R) int32, indices into the image's `RegionLabels` (0 where
    not `valid`).
  valid: (n, R) bool, False for padding rows.
  labels: (n, R) int32, class + 1 for foreground, 0 for background and
    padding.
  positions: (n,) int32, the images' positions in the step's global batch.
  """
  images: np.ndarray
  flips: np.ndarray
  scales: np.ndarray
  regions: np.ndarray
  valid: np.ndarray
  labels: np.ndarray
  positions: np.ndarray


class ImageSampler:
  """Step s's N images x R regions as a pure function of (seed, s) (rules in
  the module docstring); keeps only the candidates' indices and labels."""

  def __init__(self, region_labels: Sequence[RegionLabels], *,
               images_per_batch: int = 2, regions_per_image: int = 64,
               positive_fraction: float = 0.25, fg_threshold: float = 0.5,
               bg_low: float = 0.1, flip: bool = True, num_scales: int = 1,
               seed: int = 0):
    for name, value in (('images_per_batch', images_per_batch),
                        ('regions_per_image', regions_per_image),
                        ('num_scales', num_scales)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f'{name}={value!r} must be a positive integer.')
    if not 0 <= positive_fraction <= 1:
      raise ConfigError(f'positive_fraction={positive_fraction} must be in '
                        '[0, 1].')
    if not 0 < fg_threshold <= 1 or not 0 <= bg_low <= fg_threshold:
      raise ConfigError(f'fg_threshold={fg_threshold} and bg_low={bg_low} '
                        'need 0 <= bg_low <= fg_threshold <= 1, fg > 0.')
    if not isinstance(seed, (int, np.integer)) or seed < 0:
      raise ConfigError(f'seed={seed!r} must be a non-negative integer.')
    self.images_per_batch = int(images_per_batch)
    self.regions_per_image = int(regions_per_image)
    self.flip, self.num_scales, self.seed = flip, int(num_scales), int(seed)
    self.fg_per_image = math.floor(round(regions_per_image * positive_fraction,
                                         9))
    self._fg, self._bg, self._fg_labels = [], [], []
    for r in region_labels:
      fg = r.max_iou >= fg_threshold
      bg = (r.max_iou >= bg_low) & (r.max_iou < fg_threshold) & ~fg
      self._fg.append(np.flatnonzero(fg).astype(np.int32))
      self._bg.append(np.flatnonzero(bg).astype(np.int32))
      self._fg_labels.append(r.labels[fg].astype(np.int32))
    self.eligible = np.asarray([i for i in range(len(region_labels))
                                if self._fg[i].size + self._bg[i].size],
                               np.int32)
    if self.eligible.size < self.images_per_batch:
      raise DataError(
          f'{self.eligible.size} training images have a foreground or '
          f'background region, fewer than images_per_batch='
          f'{self.images_per_batch}: use more images or proposals.')

  def global_batch(self, step: int) -> ImageBatch:
    """Step `step`'s whole batch (every process draws the same)."""
    if not isinstance(step, (int, np.integer)) or step < 0:
      raise ConfigError(f'step={step!r} must be a non-negative integer.')
    rng = np.random.default_rng([self.seed, _STREAM, int(step)])
    n, r = self.images_per_batch, self.regions_per_image
    images = self.eligible[rng.choice(self.eligible.size, n, replace=False)]
    regions = np.zeros((n, r), np.int32)
    labels = np.zeros((n, r), np.int32)
    valid = np.zeros((n, r), bool)
    for row, image in enumerate(images):
      fg, bg = self._fg[image], self._bg[image]
      f = min(self.fg_per_image, fg.size)
      b = min(r - f, bg.size)
      take_fg = rng.choice(fg.size, f, replace=False)
      take_bg = rng.choice(bg.size, b, replace=False)
      regions[row, :f + b] = np.concatenate([fg[take_fg], bg[take_bg]])
      labels[row, :f] = self._fg_labels[image][take_fg]
      valid[row, :f + b] = True
    flips = (rng.random(n) < 0.5 if self.flip else np.zeros(n, bool))
    scales = (rng.integers(0, self.num_scales, n) if self.num_scales > 1
              else np.zeros(n, np.int64))
    return ImageBatch(images.astype(np.int32), flips, scales.astype(np.int32),
                      regions, valid, labels, np.arange(n, dtype=np.int32))

  def __call__(self, step: int, process_index: int = 0,
               process_count: int = 1) -> ImageBatch:
    """Process `process_index`'s share: global images process_index,
    process_index + process_count, ..."""
    if process_count < 1 or self.images_per_batch % process_count:
      raise ConfigError(f'images_per_batch={self.images_per_batch} must be a '
                        f'multiple of the process count {process_count}.')
    if not 0 <= process_index < process_count:
      raise ConfigError(f'process_index={process_index} must be in '
                        f'[0, {process_count}).')
    return share_of(self.global_batch(step), process_index, process_count)


def share_of(batch: ImageBatch, process_index: int,
             process_count: int) -> ImageBatch:
  """Images process_index, process_index + process_count, ... of a global
  batch."""
  share = slice(process_index, None, process_count)
  return ImageBatch(*(getattr(batch, f.name)[share]
                      for f in dataclasses.fields(ImageBatch)))
