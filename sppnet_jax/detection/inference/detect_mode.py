"""--mode=detect: a trained detector on image files, as a user runs it.

Per image: selective search (the recipe's settings), conv5 at the recipe's
scales, then `Detector.detect_from_maps`, the very code evaluation runs. It
prints one JSON line per image, {"file", "detections": [{"class", "score",
"box": [x0, y0, x1, y1]}], "drawn"} with boxes in continuous pixel
coordinates of the image (COCO's convention: pixel i spans [i, i + 1)), or
{"file", "error"} for a file that is not a readable image (the others go on),
and writes the image with its boxes drawn to <out_dir>/<name>.png.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from sppnet_jax.core.data import image_files
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features.conv5 import MultiScaleConv5
from sppnet_jax.detection.inference import drawing
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.detection.proposals.selective_search import (
    SelectiveSearchSettings, selective_search)

# Detections below this score are left out of the output (but not of the
# evaluation, which ranks them all): the class probability for softmax, the
# SVM margin for SVMs.
MIN_SCORE = {'softmax': 0.5, 'svm': 0.0}


def detect_files(detector: Detector, conv5: MultiScaleConv5,
                 proposal_settings: SelectiveSearchSettings,
                 class_names: Sequence[str], paths, *, min_score: float,
                 out_dir: str, out=sys.stdout) -> int:
  """Detects in every image file of `paths` (files or folders, checked by
  `image_files.named_images`); returns the number of unreadable files."""
  paths = image_files.named_images(paths)
  taken, unreadable = set(), 0
  for path in paths:
    image, error = image_files.read_image(path)
    if image is None:
      unreadable += 1
      print(json.dumps({'file': path, 'error': error}), file=out, flush=True)
      continue
    height, width = image.shape[:2]
    boxes = selective_search(image, proposal_settings)
    found = detector.detect_from_maps(conv5(image), boxes, height, width)
    keep = found.scores >= min_score
    names = [class_names[int(c)] for c in found.classes[keep]]
    xyxy = box_lib.to_xyxy(found.boxes[keep])
    rows = [{'class': name, 'score': round(float(s), 4),
             'box': [round(float(v), 1) for v in b]}
            for name, s, b in zip(names, found.scores[keep], xyxy)]
    drawn = drawing.draw_detections(image, found.boxes[keep],
                                    found.classes[keep], found.scores[keep],
                                    class_names)
    png = os.path.join(out_dir, drawing.output_name(path, taken))
    drawing.save_png(png, drawn)
    print(json.dumps({'file': path, 'detections': rows, 'drawn': png}),
          file=out, flush=True)
  return unreadable
