"""COCO AP of detections given in the VOC devkit's inputs (`voc.voc_map`'s),
by pycocotools, the reference implementation of the COCO metric: IoU
0.50:0.95, 101 recall points, no +1.
"""

import contextlib
import io
from typing import Any, Mapping, Sequence

import numpy as np


def coco_ap(detections: Mapping[Any, Sequence[Sequence[Any]]],
            ground_truth: Mapping[Any, Mapping[Any, tuple]]) -> dict:
  """{'ap': AP@[.50:.95], 'ap50', 'ap75'} by pycocotools' COCOeval, for the
  inputs of `voc_map` (per class; VOC pixel coordinates, converted to COCO's
  [x, y, width, height] with x = x0 - 1, width = x1 - x0 + 1). Difficult boxes
  become COCO 'iscrowd' regions, which COCOeval ignores as VOC ignores
  difficult boxes (a detection on one is neither a true nor a false
  positive; COCOeval measures that overlap by the detection's area). -1 where
  there are no boxes at all."""
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top

  classes = list(ground_truth)
  images = sorted({image for boxes in ground_truth.values() for image in boxes}
                  | {row[0] for rows in detections.values() for row in rows},
                  key=str)
  image_ids = {image: i + 1 for i, image in enumerate(images)}

  def to_coco(box):
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1]

  annotations = []
  for label, name in enumerate(classes, 1):
    for image, (boxes, difficult) in ground_truth[name].items():
      for box, hard in zip(np.asarray(boxes).reshape(-1, 4),
                           np.asarray(difficult, bool)):
        xywh = to_coco(box)
        annotations.append(dict(id=len(annotations) + 1, image_id=image_ids[image],
                                category_id=label, bbox=xywh,
                                area=xywh[2] * xywh[3], iscrowd=int(hard)))
  if not annotations:
    return {'ap': -1.0, 'ap50': -1.0, 'ap75': -1.0}
  results = [dict(image_id=image_ids[row[0]], category_id=label,
                  bbox=to_coco(row[2:6]), score=float(row[1]))
             for label, name in enumerate(classes, 1)
             for row in detections.get(name, ())]
  with contextlib.redirect_stdout(io.StringIO()):  # its progress prints
    truth = COCO()
    truth.dataset = dict(images=[{'id': i} for i in image_ids.values()],
                         annotations=annotations,
                         categories=[{'id': label, 'name': str(name)}
                                     for label, name in enumerate(classes, 1)])
    truth.createIndex()
    found = truth.loadRes(results) if results else COCO()
    evaluator = COCOeval(truth, found, 'bbox')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  ap, ap50, ap75 = (float(v) for v in evaluator.stats[:3])
  return {'ap': ap, 'ap50': ap50, 'ap75': ap75}
