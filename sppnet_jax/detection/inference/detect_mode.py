"""--mode=detect: an `ImageDetector` on image files, as a user runs it.

It prints one JSON line per image, {"file", "detections": [{"class", "score",
"box": [x0, y0, x1, y1]}], "drawn"} with boxes in continuous pixel
coordinates of the image (COCO's convention: pixel i spans [i, i + 1)), or
{"file", "error"} for a file that is not a readable image (the others go on),
and writes the image with its boxes drawn to <out_dir>/<name>.png.
"""

from __future__ import annotations

import json
import os
import sys

from sppnet_jax.core.data import image_files
from sppnet_jax.detection.inference import drawing
from sppnet_jax.detection.inference.image_detector import ImageDetector, draw


def detect_files(detector: ImageDetector, paths, *, out_dir: str,
                 out=sys.stdout) -> int:
  """Detects in every image file of `paths` (files or folders, checked by
  `image_files.named_images`) with the detector's default score threshold;
  returns the number of unreadable files."""
  paths = image_files.named_images(paths)
  taken, unreadable = set(), 0
  for path in paths:
    image, error = image_files.read_image(path)
    if image is None:
      unreadable += 1
      print(json.dumps({'file': path, 'error': error}), file=out, flush=True)
      continue
    result = detector.detect(image)
    rows = [{'class': name, 'score': round(float(s), 4),
             'box': [round(float(v), 1) for v in b]}
            for name, s, b in zip(result['names'], result['scores'],
                                  result['boxes'])]
    png = os.path.join(out_dir, drawing.output_name(path, taken))
    drawing.save_png(png, draw(image, result))
    print(json.dumps({'file': path, 'detections': rows, 'drawn': png}),
          file=out, flush=True)
  return unreadable
