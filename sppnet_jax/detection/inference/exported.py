"""Running an exported detector (`--mode=export`, inference/export.py) with
jax and NumPy alone: this module imports nothing else, so it can be copied
next to the artefacts.

  detector = load('runs/detection/export')
  result = detector.detect(image, proposals)   # uint8 (h, w, 3) RGB, (R, 4)
  result['boxes'], result['scores'], result['labels'], result['names']

`detect` picks the first bucket the image fits (`bucket_for`), pads the
image and the proposals, calls the artefact
(`jax.export.deserialize(...).call(...)`) and cuts the outputs to the
detections. Boxes, in and out, are (x0, y0, x1, y1) in continuous pixel
coordinates of the image; proposals are clipped to it. The detections are
those of `sppnet_jax.load_detector(workdir).detect(image, proposals)`.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

MANIFEST = 'export.json'


def resized_size(height: int, width: int, short_side: int,
                 step: int) -> tuple[int, int]:
  """(height, width) of an image resized for one scale: the short side at
  `short_side`, each side rounded (half to even, float64) to a multiple of
  `step`, at least `step` (the library's `image_ops.full_image_size`)."""
  scale = np.float64(short_side) / np.float64(min(height, width))
  snap = lambda side: max(step, int(np.round(np.float64(side) * scale / step))
                          * step)
  return snap(height), snap(width)


def bucket_for(manifest: dict, height: int, width: int) -> dict:
  """The first bucket of the manifest an image of height x width fits (at
  most the bucket's size, the same resized sizes), or a one-line ValueError."""
  resized = [list(resized_size(height, width, s, manifest['size_step']))
             for s in manifest['scales']]
  for bucket in manifest['buckets']:
    if (height <= bucket['height'] and width <= bucket['width']
        and bucket['resized'] == resized):
      return bucket
  sizes = ', '.join(f'{b["height"]}x{b["width"]}' for b in manifest['buckets'])
  raise ValueError(
      f'no export bucket takes a {height}x{width} image (buckets {sizes}; a '
      'bucket takes images at most its size with its aspect, to the size '
      f'step): export again with {height}x{width} in '
      '--config.export.image_sizes.')


class ExportedDetector:
  """The manifest and its artefacts, deserialised when first used."""

  def __init__(self, folder: str, manifest: dict):
    self.folder, self.manifest = folder, manifest
    self.class_names = tuple(manifest['class_names'])
    self._artefacts = {}

  def artefact(self, bucket: dict):
    name = bucket['file']
    if name not in self._artefacts:
      with open(os.path.join(self.folder, name), 'rb') as f:
        self._artefacts[name] = jax.export.deserialize(bytearray(f.read()))
    return self._artefacts[name]

  def detect(self, image, proposals, score_threshold: float | None = None
             ) -> dict:
    """The detections of one uint8 (h, w, 3) RGB image from its (R, 4)
    proposals, best first: {'boxes': float32 (K, 4), 'scores': float32 (K,),
    'labels': int64 (K,), 'names': K class names}. score_threshold: default
    the manifest's. One-line ValueErrors for an image or proposals out of
    contract."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise ValueError('image must be uint8 (h, w, 3) RGB, got '
                       f'{image.dtype} {image.shape}')
    height, width = image.shape[:2]
    bucket = bucket_for(self.manifest, height, width)
    boxes = np.asarray(proposals, np.float32).reshape(-1, 4)
    limit = self.manifest['max_proposals']
    if len(boxes) > limit:
      raise ValueError(f'{len(boxes)} proposals, the export takes at most '
                       f'{limit}: keep the first {limit}.')
    if not np.all(np.isfinite(boxes)):
      raise ValueError('proposals hold NaN or infinite coordinates.')
    clipped = np.clip(boxes, 0, np.float32([width, height, width, height]))
    if np.any((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])):
      raise ValueError('proposals hold boxes empty inside the image (x1 <= x0 '
                       'or y1 <= y0 once clipped to it): drop them.')
    padded = np.zeros((bucket['height'], bucket['width'], 3), np.uint8)
    padded[:height, :width] = image
    padded_boxes = np.zeros((limit, 4), np.float32)
    padded_boxes[:len(boxes)] = boxes
    threshold = (self.manifest['score_threshold'] if score_threshold is None
                 else score_threshold)
    out_boxes, scores, labels, count = self.artefact(bucket).call(
        padded, np.int32(height), np.int32(width), padded_boxes,
        np.int32(len(boxes)), np.float32(threshold))
    count = int(count)
    labels = np.asarray(labels)[:count].astype(np.int64)
    return {'boxes': np.asarray(out_boxes)[:count],
            'scores': np.asarray(scores)[:count],
            'labels': labels,
            'names': [self.class_names[k] for k in labels]}


def load(folder: str) -> ExportedDetector:
  """The exported detector in `folder` (WORKDIR/export), or a one-line
  FileNotFoundError."""
  path = os.path.join(folder, MANIFEST)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no {MANIFEST} in {folder}: run --mode=export '
                            'on the detection workdir first.')
  with open(path) as f:
    manifest = json.load(f)
  if manifest.get('task') != 'detection':
    raise ValueError(f'{path} is not an exported detector.')
  return ExportedDetector(folder, manifest)
