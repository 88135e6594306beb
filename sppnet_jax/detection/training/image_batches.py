"""The arrays of an end-to-end training step from `image_sampling`'s
choices: each image mirrored and resized to its scale, padded to the step's
shape bucket, its regions projected onto its conv5 cells, with their labels
and normalised regression targets.

Geometry, the same as at test time (`features.conv5`, `features.pooling`):
the image is resized so that its short side is the scale, each side a
multiple of `size_step` (`conv5.resize_to_scale`); a region (a box of the
original image, mirrored with the image when it is) is scaled by the resize
factors and projected with `core.projection.project_boxes` onto the conv5 map
of the resized image (its own size, not the padded one: boxes never reach the
padding). Every image of a step is placed at the top-left of one canvas
whose sides are the step's largest resized sides rounded up to multiples of
`bucket_step`, filled with the mean colour (zero once normalised), so a run
compiles once per bucket (`bucket_shape`) whatever its images' sizes. conv5
cells near the right and bottom edges of an image then see the padding
instead of the test-time zero padding of the convolutions: a small
difference at the border, the cost of batching images of several sizes (Fast
R-CNN pads the same way).

Targets (Fast R-CNN): a foreground region's `boxes.encode_deltas` to its
best-overlapping ground-truth box (both mirrored with the image), divided by
`target_stds` (means zero: its released code's (0.1, 0.1, 0.2, 0.2));
zeros for background and padding rows.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from sppnet_jax.core import architectures, projection
from sppnet_jax.core.data import image_ops
from sppnet_jax.core.zf5 import MEAN_RGB
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features.conv5 import resize_to_scale
from sppnet_jax.detection.training.image_sampling import ImageBatch
from sppnet_jax.detection.training.sampling import RegionLabels

PAD_COLOUR = np.round(np.asarray(MEAN_RGB)).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class TrainImage:
  """A training image with its labelled regions: `regions.gt_index` indexes
  `gt_boxes` (the boxes `label_regions` was given)."""
  image: np.ndarray  # uint8 (H, W, 3)
  gt_boxes: np.ndarray  # float32 (G, 4)
  regions: RegionLabels


@dataclasses.dataclass(frozen=True)
class BatchGeometry:
  """How images and regions become arrays."""
  scales: tuple  # training short sides (`ImageBatch.scales` indexes them)
  size_step: int  # each resized side a multiple of this
  bucket_step: int  # each padded side a multiple of this
  projection_rule: str = 'paper'
  architecture: str = 'zf5'
  target_stds: tuple = (0.1, 0.1, 0.2, 0.2)


def resized_shape(image: TrainImage, scale: int,
                  geometry: BatchGeometry) -> tuple[int, int]:
  height, width = image.image.shape[:2]
  return image_ops.full_image_size(height, width, scale, geometry.size_step)


def bucket_shape(batch: ImageBatch, images: Sequence[TrainImage],
                 geometry: BatchGeometry) -> tuple[int, int]:
  """The canvas of a step: the largest resized height and width of its
  (global) batch's images, each rounded up to a multiple of bucket_step."""
  shapes = [resized_shape(images[i], geometry.scales[s], geometry)
            for i, s in zip(batch.images, batch.scales)]
  step = geometry.bucket_step
  return tuple(int(-(-max(side) // step) * step) for side in zip(*shapes))


def assemble(batch: ImageBatch, images: Sequence[TrainImage],
             geometry: BatchGeometry, bucket: tuple[int, int]) -> dict:
  """The step's arrays for the n images of `batch` (rules in the module
  docstring):

    image (n, H, W, 3) uint8 on the `bucket` canvas; cells (n, R, 4) int32
    conv5 cells (y0, x0, y1, x1); valid (n, R) bool; label (n, R) int32;
    target (n, R, 4) float32; position (n,) int32.
  """
  n, r = batch.regions.shape
  out = dict(image=np.empty((n, *bucket, 3), np.uint8),
             cells=np.zeros((n, r, 4), np.int32), valid=batch.valid.copy(),
             label=batch.labels.copy(), target=np.zeros((n, r, 4), np.float32),
             position=batch.positions.astype(np.int32))
  out['image'][...] = PAD_COLOUR
  stds = np.asarray(geometry.target_stds, np.float32)
  for row in range(n):
    item = images[batch.images[row]]
    picture = item.image
    height, width = picture.shape[:2]
    valid = batch.valid[row]
    boxes = item.regions.boxes[batch.regions[row]]
    gt_index = item.regions.gt_index[batch.regions[row]]
    gt = item.gt_boxes[np.maximum(gt_index, 0)] if len(item.gt_boxes) else (
        np.zeros_like(boxes))
    if batch.flips[row]:
      picture = picture[:, ::-1]
      boxes = box_lib.flip_left_right(boxes, width)
      gt = box_lib.flip_left_right(gt, width)
    resized = resize_to_scale(np.ascontiguousarray(picture),
                              geometry.scales[batch.scales[row]],
                              geometry.size_step)
    rh, rw = resized.shape[:2]
    out['image'][row, :rh, :rw] = resized
    scaled = projection.scale_boxes(boxes, rh / height, rw / width)
    cells = projection.project_boxes(
        scaled, architectures.conv5_size(rh, geometry.architecture),
        architectures.conv5_size(rw, geometry.architecture),
        geometry.projection_rule, geometry.architecture)
    out['cells'][row] = np.where(valid[:, None], cells, 0)
    fg = valid & (batch.labels[row] > 0)
    if fg.any():
      out['target'][row, fg] = box_lib.encode_deltas(boxes[fg], gt[fg]) / stds
  return out
