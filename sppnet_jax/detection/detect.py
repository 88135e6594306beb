"""--mode=detect: the trained detector on image files, as a user runs it.

Per image: selective search (the recipe's settings), conv5 at the recipe's
scales, then `Detector.detect_from_maps`, the very code evaluation runs. It
prints one JSON line per image, {"file", "detections": [{"class", "score",
"box": [x0, y0, x1, y1]}]} with boxes in continuous pixel coordinates of the
image (COCO's convention: pixel i spans [i, i + 1)), or {"file", "error"} for
a file that is not a readable image (the others go on), and writes the image
with its boxes drawn to WORKDIR/detect/<name>.png.
"""

from __future__ import annotations

import json
import os
import sys

from sppnet_jax.core.data import image_files
from sppnet_jax.detection import pipeline, proposal_job, proposals, visualize
from sppnet_jax.detection.features import MultiScaleConv5
from sppnet_jax.errors import DataError

# Detections below this score are left out of the output (but not of the
# evaluation, which ranks them all): the class probability for softmax, the
# SVM margin for SVMs.
MIN_SCORE = {'softmax': 0.5, 'svm': 0.0}


def detect_files(config, workdir: str, paths, *, out=sys.stdout) -> int:
  """Detects in every file; returns the number of unreadable files."""
  paths = image_files.expand_paths(paths)
  if not paths:
    raise DataError('no images to detect in: pass image files or folders as '
                    'arguments (or --images=a.jpg,dir/).')
  context = pipeline.open_context(config, workdir)
  detector, _ = pipeline.load_detector(context)
  backbone = context.backbone
  conv5 = MultiScaleConv5(backbone.model, backbone.params,
                          config.detection.scales, config.detection.size_step)
  settings = proposal_job.settings_of(config)
  min_score = MIN_SCORE[config.detection.classifier]
  folder = os.path.join(workdir, 'detect')
  taken, unreadable = set(), 0
  for path in paths:
    image, error = image_files.read_image(path)
    if image is None:
      unreadable += 1
      print(json.dumps({'file': path, 'error': error}), file=out, flush=True)
      continue
    height, width = image.shape[:2]
    boxes = proposals.selective_search(image, settings)
    found = detector.detect_from_maps(conv5(image), boxes, height, width)
    keep = found.scores >= min_score
    names = [context.class_names[int(c)] for c in found.classes[keep]]
    rows = [{'class': name, 'score': round(float(s), 4),
             'box': [round(float(v), 1) for v in (b[1], b[0], b[3], b[2])]}
            for name, s, b in zip(names, found.scores[keep], found.boxes[keep])]
    drawn = visualize.draw_detections(image, found.boxes[keep],
                                      found.classes[keep], found.scores[keep],
                                      context.class_names)
    png = os.path.join(folder, visualize.output_name(path, taken))
    visualize.save_png(png, drawn)
    print(json.dumps({'file': path, 'detections': rows, 'drawn': png}),
          file=out, flush=True)
  return unreadable

