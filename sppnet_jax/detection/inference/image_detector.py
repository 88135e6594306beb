"""A trained detector on whole images, as a user calls it from Python
(`sppnet_jax.load_detector(path)`, pipeline.py) and as `--mode=detect` runs
it (detect_mode.py):

  detector = sppnet_jax.load_detector('runs/detection')
  result = detector.detect('street.jpg')  # or a uint8 (H, W, 3) array
  result['boxes'], result['scores'], result['labels'], result['names']
  picture = sppnet_jax.draw(image, result)

Per image: selective search with the recipe's settings (unless proposals are
given), conv5 at the recipe's scales, then `Detector.detect_from_maps`, the
very code evaluation runs. Boxes leave as (x0, y0, x1, y1) in continuous
pixel coordinates of the image (pixel i spans [i, i + 1); torchvision's
order), and proposals come in the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from sppnet_jax.core.data import image_files
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features.conv5 import MultiScaleConv5
from sppnet_jax.detection.inference import drawing
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.detection.proposals.selective_search import (
    SelectiveSearchSettings, selective_search)
from sppnet_jax.errors import DataError

# The default `score_threshold` of `detect` unless config.test.min_score
# sets one: the class probability for softmax, the SVM margin for SVMs.
# Evaluation ranks every detection instead.
MIN_SCORE = {'softmax': 0.5, 'svm': 0.0}


@dataclasses.dataclass
class ImageDetector:
  """A trained detector with everything it needs to take whole images.

  Attributes:
    detector: the fine-tuned head with its classifiers and regressor.
    conv5: the backbone's conv5 at the recipe's scales.
    proposal_settings: the recipe's selective search.
    class_names: the K class names; label k is class_names[k].
    score_threshold: `detect`'s default (config.test.min_score, else
      MIN_SCORE of the recipe's classifier).
    step: the fine-tuning step of the head.
  """
  detector: Detector
  conv5: MultiScaleConv5
  proposal_settings: SelectiveSearchSettings
  class_names: tuple[str, ...]
  score_threshold: float
  step: int

  def detect(self, image, proposals=None,
             score_threshold: float | None = None) -> dict:
    """The detections of one image, best first.

    Args:
      image: a file path or a uint8 RGB (H, W, 3) array.
      proposals: (R, 4) boxes (x0, y0, x1, y1) in pixels of the image
        (clipped to it); None: the recipe's selective search.
      score_threshold: detections scoring below it are left out (default
        `self.score_threshold`).

    Returns:
      {'boxes': float32 (K, 4) (x0, y0, x1, y1), 'scores': float32 (K,),
       'labels': int64 (K,) indices into class_names, 'names': K class names}.

    Raises:
      DataError: a file that is not a readable image (named), an array that
        is not uint8 RGB, proposals that are not (R, 4) finite numbers or
        hold a box empty inside the image.
    """
    image = image_files.image_of(image)
    height, width = image.shape[:2]
    if proposals is None:
      boxes = selective_search(image, self.proposal_settings)
    else:
      boxes = box_lib.clip_to_image(
          box_lib.from_xyxy(box_lib.checked(proposals, 'proposals')), height,
          width)
      empty = int(np.sum(box_lib.areas(boxes) <= 0))
      if empty:
        raise DataError(f'proposals: {empty} box(es) empty inside the '
                        f'{width}x{height} image (x1 <= x0 or y1 <= y0 once '
                        'clipped to it): drop them.')
    found = self.detector.detect_from_maps(self.conv5(image), boxes, height,
                                           width)
    threshold = (self.score_threshold if score_threshold is None
                 else score_threshold)
    keep = found.scores >= threshold
    labels = found.classes[keep].astype(np.int64)
    return {'boxes': box_lib.to_xyxy(found.boxes[keep]).astype(np.float32),
            'scores': found.scores[keep].astype(np.float32),
            'labels': labels,
            'names': [self.class_names[k] for k in labels]}

  def detect_batch(self, images, proposals: Sequence | None = None,
                   score_threshold: float | None = None) -> list[dict]:
    """`detect` of each image of `images` (a list of paths and arrays of
    any sizes, or an (N, H, W, 3) batch), with `proposals` None or one
    array per image. Images are read before any is detected, so a bad one
    fails the call at once; conv5 compiles once per shape bucket."""
    images = image_files.images_of(images)
    if proposals is None:
      proposals = [None] * len(images)
    elif len(proposals) != len(images):
      raise DataError(f'{len(proposals)} proposal arrays for {len(images)} '
                      'images: pass one (R, 4) array per image, or None.')
    return [self.detect(image, boxes, score_threshold)
            for image, boxes in zip(images, proposals)]


def draw(image, result: dict, *, line_width: int | None = None) -> np.ndarray:
  """A copy of `image` (a path or a uint8 (H, W, 3) array) with the
  detections `result` (`ImageDetector.detect`'s) drawn: each class in its
  own colour, a tag "name 0.87" above each box (drawing.draw_detections)."""
  image = image_files.image_of(image)
  labels = np.asarray(result['labels'], np.int64)
  names = dict(zip(labels.tolist(), result['names']))
  return drawing.draw_detections(image, box_lib.from_xyxy(result['boxes']),
                                 labels, result['scores'], names,
                                 line_width=line_width)
