"""Region labels and the fine-tuning mini-batches of SPP-net detection.

Fine-tuning fc6-fc8 (the paper's section 4, the authors' `spp_finetune_voc.m`)
trains on mini-batches of 128 regions drawn over the whole training set, 25%
of them positives (IoU >= 0.5 with a ground-truth box, labelled with its
class), the rest negatives (IoU in [0.1, 0.5), label 0), ground-truth boxes
added to the proposals, horizontal flips. This module is the host side of it:
who is what (`label_regions`) and which regions make step s's batch
(`RegionSampler`). The fine-tuning loop pools the chosen regions from the
per-image feature caches (`split_regions.pool_batch`) and feeds the device.

Labels (`label_regions`):
  * Regions = the ground-truth boxes first (when added), then the proposals.
  * IoU in the library's box convention (`boxes.py`: (y0, x0, y1, x1),
    continuous pixels): no +1 (the VOC +1 belongs to evaluation only);
    0 where the union is 0, so a zero-area box matches nothing, not even
    itself. Computed in float64 by `boxes.best_match`.
  * Each region takes the ground-truth box of highest IoU, the first one (in
    the given order) on ties; its label is that box's dataset label + 1
    (classes 1..K; 0 = background) and its `gt_index` the box's index in the
    given arrays. A region overlapping no box (IoU 0, or an image without
    objects) is background with `gt_index` -1. The authors' code keeps the
    best IoU per class and takes the lowest class on ties: the two differ only
    on exact ties between boxes of different classes.
  * Difficult objects are ground truth like the others by default
    (`use_difficult=True`): R-CNN's `roidb_from_voc.m` uses every object, and
    SPP-net's `Script_spp_voc.m` builds its training roidb with
    `with_hard_samples = false`, which keeps every object too. Fast R-CNN's
    `pascal_voc.py` (`use_diff=False`) drops them; `use_difficult=False` does
    the same here: a difficult box is neither added nor matched, so a proposal
    on it is background.

Mini-batches (`RegionSampler`):
  * Candidates over the whole data set, as the authors' window sampler (not
    Fast R-CNN's 2 images per batch): foreground = max IoU >= fg_threshold,
    background = max IoU in [bg_low, bg_high) and not foreground; the rest
    (IoU below bg_low) is never sampled.
  * Exactly `batch_size` regions: floor(batch_size * positive_fraction)
    foreground when that many exist, else all of them, the rest background;
    when background runs short, more foreground fills in. Fewer candidates
    than `batch_size` in all is a DataError. Within a step no region repeats
    (drawn without replacement); across steps the draws are independent.
  * Stateless: step s's global batch is a function of (seed, s) alone (a
    NumPy generator seeded with (seed, stream tag, s)), so a resumed run
    draws exactly the batches it would have drawn, with no RNG state to save.
    The generator is PCG64 from `SeedSequence`; `Generator.choice` and
    `.random` keep their streams within a NumPy version (NumPy does not
    promise it across versions).
  * With `flip`, each drawn region also draws a fair coin: flipped regions
    come from the horizontally flipped image (labels are unchanged by a flip,
    so this samples the data set doubled by flipped copies, as the authors'
    flipped imdb).
  * The global batch is ordered foreground first, then background, each in
    draw order; process p of P takes the global positions p, p + P, ...
    (`batch_size` must be a multiple of P), so every process draws the same
    global batch, the shares are disjoint, their union is the 1-process
    batch, and the foreground counts of two shares differ by at most one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.errors import ConfigError, DataError

# Mixed into every step's seed so that the sampler's stream differs from other
# users of the same run seed.
_STREAM = 0x5A3B1E


@dataclasses.dataclass(frozen=True)
class RegionLabels:
  """The regions of one image with what they overlap.

  boxes: (N, 4) float32 (y0, x0, y1, x1): ground truth first (when added),
    then the proposals.
  is_gt: (N,) bool, True for the added ground-truth boxes.
  max_iou: (N,) float64, the highest IoU with a ground-truth box (0 if none).
  labels: (N,) int32, that box's dataset label + 1; 0 where max_iou is 0.
  gt_index: (N,) int32, that box's index in the given gt arrays; -1 where
    max_iou is 0.
  """
  boxes: np.ndarray
  is_gt: np.ndarray
  max_iou: np.ndarray
  labels: np.ndarray
  gt_index: np.ndarray


def label_regions(proposals, gt_boxes, gt_labels, gt_difficult, *,
                  add_ground_truth: bool = True,
                  use_difficult: bool = True) -> RegionLabels:
  """(R, 4) proposals and the image's G ground-truth boxes, dataset labels
  (0..K-1) and difficult flags -> its regions with their best-overlapping box
  (rules in the module docstring)."""
  proposals = box_lib.checked(proposals, 'proposals')
  gt_boxes = box_lib.checked(gt_boxes, 'gt_boxes')
  gt_labels = np.asarray(gt_labels).reshape(-1)
  gt_difficult = np.asarray(gt_difficult, bool).reshape(-1)
  count = gt_boxes.shape[0]
  if gt_labels.shape != (count,) or gt_difficult.shape != (count,):
    raise DataError(f'{count} ground-truth boxes need {count} labels and '
                    f'difficult flags, got {gt_labels.shape[0]} and '
                    f'{gt_difficult.shape[0]}.')
  if count and (not np.issubdtype(gt_labels.dtype, np.integer)
                or gt_labels.min() < 0):
    raise DataError('gt_labels must be the dataset labels 0..K-1 (integers), '
                    f'got {gt_labels[:5]}...; background is added here.')
  used = np.flatnonzero(~gt_difficult if not use_difficult
                        else np.ones(count, bool))
  added = gt_boxes[used] if add_ground_truth else np.zeros((0, 4), np.float32)
  boxes = np.concatenate([added, proposals]).astype(np.float32)
  n = boxes.shape[0]
  best, max_iou = box_lib.best_match(boxes, gt_boxes[used])
  matched = max_iou > 0
  gt_index = np.where(matched, used[best] if used.size else -1, -1)
  labels = np.where(matched, gt_labels[gt_index] + 1 if count else 0, 0)
  is_gt = np.arange(n) < added.shape[0]
  return RegionLabels(boxes, is_gt, max_iou.astype(np.float64),
                      labels.astype(np.int32), gt_index.astype(np.int32))


@dataclasses.dataclass(frozen=True)
class RegionBatch:
  """One process's share of a step's mini-batch.

  images: (n,) int32, index of the image in the sampler's list.
  regions: (n,) int32, index of the region in that image's `RegionLabels`.
  labels: (n,) int32 training targets: the region's label for foreground,
    0 for background.
  flips: (n,) bool, True: pool the region from the flipped image (its box
    is `boxes.flip_left_right(box, width)`).
  positions: (n,) int32, the regions' positions in the step's global batch.
  """
  images: np.ndarray
  regions: np.ndarray
  labels: np.ndarray
  flips: np.ndarray
  positions: np.ndarray


def _candidates(masks: Sequence[np.ndarray]):
  """Per-image boolean masks -> (region indices concatenated, per-image start
  offsets with the total last)."""
  regions = [np.flatnonzero(m).astype(np.int32) for m in masks]
  offsets = np.zeros(len(regions) + 1, np.int64)
  np.cumsum([r.size for r in regions], out=offsets[1:])
  flat = np.concatenate(regions) if regions else np.zeros(0, np.int32)
  return flat, offsets


class RegionSampler:
  """Fine-tuning mini-batches over a data set's labelled regions, a pure
  function of (seed, step) (design in the module docstring).

  Only the candidates' indices are kept (about 4 bytes per candidate), not the
  `RegionLabels` themselves.
  """

  def __init__(self, region_labels: Sequence[RegionLabels], *,
               batch_size: int = 128, positive_fraction: float = 0.25,
               fg_threshold: float = 0.5,
               bg_range: tuple[float, float] = (0.1, 0.5),
               flip: bool = True, seed: int = 0):
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
      raise ConfigError(f'batch_size={batch_size!r} must be a positive '
                        'integer.')
    if not 0 <= positive_fraction <= 1:
      raise ConfigError(f'positive_fraction={positive_fraction} must be in '
                        '[0, 1].')
    if not 0 < fg_threshold <= 1:
      raise ConfigError(f'fg_threshold={fg_threshold} must be in (0, 1].')
    low, high = bg_range
    if not 0 <= low <= high:
      raise ConfigError(f'bg_range={bg_range} must be (low, high) with '
                        '0 <= low <= high.')
    if not isinstance(seed, (int, np.integer)) or seed < 0:
      raise ConfigError(f'seed={seed!r} must be a non-negative integer.')
    self.batch_size, self.flip, self.seed = int(batch_size), flip, int(seed)
    self.num_images = len(region_labels)
    fg = [r.max_iou >= fg_threshold for r in region_labels]
    bg = [(r.max_iou >= low) & (r.max_iou < high) & ~f
          for r, f in zip(region_labels, fg)]
    self._fg, self._fg_offsets = _candidates(fg)
    self._bg, self._bg_offsets = _candidates(bg)
    self._fg_labels = (np.concatenate([r.labels[m] for r, m in
                                       zip(region_labels, fg)])
                       if region_labels else np.zeros(0, np.int32))
    self.num_foreground, self.num_background = self._fg.size, self._bg.size
    if self.num_foreground + self.num_background < self.batch_size:
      raise DataError(
          f'The data set has {self.num_foreground} foreground and '
          f'{self.num_background} background regions, fewer than one batch '
          f'of {self.batch_size}: use a smaller batch_size or more images or '
          'proposals.')
    wanted = math.floor(round(self.batch_size * positive_fraction, 9))
    fg_count = min(wanted, self.num_foreground)
    bg_count = min(self.batch_size - fg_count, self.num_background)
    self.fg_count = self.batch_size - bg_count
    self.bg_count = bg_count

  def global_batch(self, step: int) -> RegionBatch:
    """Step `step`'s whole mini-batch: foreground, then background."""
    if not isinstance(step, (int, np.integer)) or step < 0:
      raise ConfigError(f'step={step!r} must be a non-negative integer.')
    rng = np.random.default_rng([self.seed, _STREAM, int(step)])
    fg = rng.choice(self.num_foreground, self.fg_count, replace=False)
    bg = rng.choice(self.num_background, self.bg_count, replace=False)
    flips = (rng.random(self.batch_size) < 0.5 if self.flip
             else np.zeros(self.batch_size, bool))
    images = np.concatenate([
        np.searchsorted(self._fg_offsets, fg, 'right') - 1,
        np.searchsorted(self._bg_offsets, bg, 'right') - 1])
    regions = np.concatenate([self._fg[fg], self._bg[bg]])
    labels = np.concatenate([self._fg_labels[fg],
                             np.zeros(self.bg_count, np.int32)])
    return RegionBatch(images.astype(np.int32), regions.astype(np.int32),
                       labels.astype(np.int32), flips,
                       np.arange(self.batch_size, dtype=np.int32))

  def __call__(self, step: int, process_index: int = 0,
               process_count: int = 1) -> RegionBatch:
    """Process `process_index`'s share of step `step`'s mini-batch: global
    positions process_index, process_index + process_count, ..."""
    if process_count < 1 or self.batch_size % process_count:
      raise ConfigError(f'batch_size={self.batch_size} must be a multiple of '
                        f'the process count {process_count}.')
    if not 0 <= process_index < process_count:
      raise ConfigError(f'process_index={process_index} must be in '
                        f'[0, {process_count}).')
    batch = self.global_batch(step)
    share = slice(process_index, None, process_count)
    return RegionBatch(*(getattr(batch, f.name)[share]
                         for f in dataclasses.fields(RegionBatch)))
