"""--mode=export of a detection workdir: the whole trained detector as
`jax.export` artefacts (CPU and CUDA), one per shape bucket, and a manifest;
`inference/exported.py` loads and runs them with jax alone.

  WORKDIR/export/detector_375x500.jax_exported ...   one per bucket
  WORKDIR/export/export.json                         the manifest

One artefact is one function of fixed shapes:

  (image uint8 (H, W, 3) zero-padded to the bucket, height int32, width
   int32, proposals float32 (P, 4) (x0, y0, x1, y1) padded, count int32,
   score_threshold float32)
  -> (boxes float32 (M, 4) (x0, y0, x1, y1), scores float32 (M,),
      labels int32 (M,), count int32)

with H x W the bucket's size, P the proposals it takes, M =
config.test.max_per_image; the first `count` rows are the detections scoring
at least score_threshold, best first, the rest zeros. Inside, the live
detector's own steps (`Detector.detect_padded`): the image resized to each
scale (`features.resize`, the live path's resize), conv5, region pyramid,
fc6-fc8, SVM or softmax scores, per-class NMS (`nms.batched_nms_padded`),
box regression.

A bucket is an image size H x W: it takes every image of height <= H and
width <= W whose resized sizes at the recipe's scales (`full_image_size`:
short side at the scale, sides rounded to size_step) are those of H x W,
the conv5 shapes being static in the graph; the manifest lists them
(config.export.image_sizes, `config.parse_sizes`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.core.zf5 import MEAN_RGB, STDDEV_RGB
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features import resize
from sppnet_jax.detection.features.conv5 import MultiScaleConv5, ScaledMap

MANIFEST = 'export.json'
PLATFORMS = ('cpu', 'cuda')
BOX_CONVENTION = ('(x0, y0, x1, y1) in continuous pixel coordinates of the '
                  'image: pixel i spans [i, i + 1)')


@dataclasses.dataclass(frozen=True)
class Bucket:
  """Images up to height x width whose resized (height, width) at each scale
  are `resized`."""
  height: int
  width: int
  resized: tuple

  @property
  def name(self) -> str:
    return f'{self.height}x{self.width}'


def buckets_of(sizes: Sequence[tuple[int, int]],
               conv5: MultiScaleConv5) -> list[Bucket]:
  """The buckets of image sizes (duplicates dropped, order kept)."""
  out = []
  for height, width in dict.fromkeys(tuple(s) for s in sizes):
    out.append(Bucket(height, width, tuple(
        conv5.resized_shape(height, width, s) for s in conv5.scales)))
  return out


def _factor_table(resized_side: int, max_side: int) -> np.ndarray:
  """resized_side / side for side 0..max_side as the live path computes it
  (float64, then float32 in `projection.scale_boxes`); entry 0 unused."""
  sides = np.arange(max_side + 1, dtype=np.float64)
  sides[0] = 1.0
  return (resized_side / sides).astype(np.float32)


def detector_function(image_detector, bucket: Bucket, max_proposals: int):
  """The detector of an `ImageDetector` as one traceable function of the
  bucket's shapes (the module docstring's signature)."""
  detector = image_detector.detector
  live = image_detector.conv5
  # Plain XLA convolutions: the CPU-specific im2col graphs would be baked
  # into the CUDA artefact too.
  conv5 = MultiScaleConv5(live.model.clone(conv_impl='xla'), live.params,
                          live.scales, live.step)
  tables = [(_factor_table(h, bucket.height), _factor_table(w, bucket.width))
            for h, w in bucket.resized]

  def detect(image, height, width, proposals, count, score_threshold):
    valid = jnp.arange(max_proposals) < count
    boxes = box_lib.clip_to_image(box_lib.from_xyxy(proposals), height, width)
    boxes = jnp.where(valid[:, None], boxes, 0)
    maps = []
    for shape, (rows, cols) in zip(bucket.resized, tables):
      scaled = resize.resize_to_uint8(image, height, width, shape)
      maps.append(ScaledMap(conv5.conv5_of_image(conv5.params, scaled[None]),
                            jnp.asarray(rows)[height],
                            jnp.asarray(cols)[width]))
    found, scores, labels, kept = detector.detect_padded(maps, boxes, valid,
                                                         height, width)
    kept &= scores >= score_threshold
    return (jnp.where(kept[:, None], box_lib.to_xyxy(found), 0),
            jnp.where(kept, scores, 0), jnp.where(kept, labels, 0),
            jnp.sum(kept.astype(jnp.int32)))

  return detect


def input_specs(bucket: Bucket, max_proposals: int) -> tuple:
  scalar = lambda dtype: jax.ShapeDtypeStruct((), dtype)
  return (jax.ShapeDtypeStruct((bucket.height, bucket.width, 3), jnp.uint8),
          scalar(jnp.int32), scalar(jnp.int32),
          jax.ShapeDtypeStruct((max_proposals, 4), jnp.float32),
          scalar(jnp.int32), scalar(jnp.float32))


def export_detector(image_detector, buckets: Sequence[Bucket],
                    max_proposals: int, out_dir: str, *,
                    platforms: Sequence[str] = PLATFORMS) -> str:
  """Writes one artefact per bucket and the manifest; returns the manifest's
  path."""
  os.makedirs(out_dir, exist_ok=True)
  detector, conv5 = image_detector.detector, image_detector.conv5
  entries = []
  for bucket in buckets:
    function = jax.jit(detector_function(image_detector, bucket,
                                         max_proposals))
    exported = jax.export.export(function, platforms=tuple(platforms))(
        *input_specs(bucket, max_proposals))
    name = f'detector_{bucket.name}.jax_exported'
    with open(os.path.join(out_dir, name), 'wb') as f:
      f.write(exported.serialize())
    entries.append(dict(file=name, height=bucket.height, width=bucket.width,
                        resized=[list(s) for s in bucket.resized]))
  manifest = dict(
      task='detection', class_names=list(image_detector.class_names),
      buckets=entries, platforms=list(platforms),
      max_proposals=max_proposals, max_detections=detector.max_per_image,
      score_threshold=image_detector.score_threshold,
      scales=list(conv5.scales), size_step=conv5.step,
      box_convention=BOX_CONVENTION,
      inputs=['image uint8 (H, W, 3) RGB, zero-padded to the bucket',
              'height int32', 'width int32',
              'proposals float32 (max_proposals, 4), padded',
              'count int32: the proposals given', 'score_threshold float32'],
      outputs=['boxes float32 (max_detections, 4)',
               'scores float32 (max_detections,)',
               'labels int32 (max_detections,): indices into class_names',
               'count int32: the first count rows are the detections, best '
               'first'],
      preprocessing=dict(
          resize=('each scale: short side at the scale, each side rounded to '
                  'a multiple of size_step; bilinear with half-pixel centres, '
                  'no antialiasing (TensorFlow\'s tf.image.resize), rounded '
                  'to uint8; done inside'),
          mean_rgb=list(MEAN_RGB), stddev_rgb=list(STDDEV_RGB),
          fits=('an image fits a bucket when its height and width are at '
                'most the bucket\'s and its resized sizes are the bucket\'s')))
  path = os.path.join(out_dir, MANIFEST)
  with open(path, 'w') as f:
    json.dump(manifest, f, indent=1)
  return path
