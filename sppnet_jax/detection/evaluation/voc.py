"""PASCAL VOC average precision, exactly as the VOC devkit computes it.

`voc_ap` is `VOCevaldet.m` of the VOC2007 devkit (the metric the paper's and
R-CNN's mAPs use), per class:

* boxes are VOC pixel coordinates (x0, y0, x1, y1), 1-based and inclusive, as
  in the XML annotations; areas and intersections count pixels (+1);
* detections are taken by descending score (a stable sort: equal scores keep
  their input order, as MATLAB's sort does);
* a detection's ground truth is the box of its image with the highest IoU (the
  first one on equal IoUs), over all of the image's boxes; if that IoU is
  >= `iou_threshold` (0.5), the detection is ignored when the box is difficult,
  a true positive when the box is not matched yet, and a false positive (a
  duplicate) when it is; below the threshold it is a false positive. (So a
  detection whose best box is taken is a duplicate even if a second box it
  overlaps is free: the devkit's rule. py-faster-rcnn's `voc_eval.py` also
  uses IoU > 0.5 rather than >= 0.5.)
* difficult boxes are not in the recall denominator;
* `use_07_metric=True`: 11-point interpolated AP, the mean over recall
  t = 0, 0.1, ..., 1 of the highest precision at recall >= t (0 where none);
  False: the VOC2010+ area under the interpolated precision/recall curve.

A class with no non-difficult box has no AP (NaN); `voc_map` leaves such classes
out of the mean and says which.

The inputs are plain rows and dicts in VOC pixel coordinates (the devkit's
own), so that a user can score any detector with these functions;
`coco.coco_ap` scores the same inputs with pycocotools.
"""

from typing import Any, Mapping, Sequence

import numpy as np

from sppnet_jax.core.average_precision import average_precision
from sppnet_jax.detection import boxes as box_lib


def precision_recall(detections: Sequence[Sequence[Any]],
                     ground_truth: Mapping[Any, tuple], iou_threshold: float = 0.5
                     ) -> tuple[np.ndarray, np.ndarray, int]:
  """(precision, recall, number of non-difficult boxes) after each detection
  in score order; see the module docstring for the matching rule."""
  num_positives = sum(int(np.sum(~np.asarray(difficult, bool)))
                      for _, difficult in ground_truth.values())
  rows = list(detections)
  scores = np.array([float(row[1]) for row in rows], np.float64)
  order = np.argsort(-scores, kind='stable')
  matched = {image: np.zeros(len(np.asarray(boxes).reshape(-1, 4)), bool)
             for image, (boxes, _) in ground_truth.items()}
  tp = np.zeros(len(rows))
  fp = np.zeros(len(rows))
  for rank, index in enumerate(order):
    image, box = rows[index][0], np.asarray(rows[index][2:6], np.float64)
    if image not in ground_truth:
      fp[rank] = 1
      continue
    boxes, difficult = ground_truth[image]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
      fp[rank] = 1
      continue
    overlaps = box_lib.iou_matrix(box[None], boxes, plus_one=True)[0]
    best = int(np.argmax(overlaps))  # the first of equal maxima
    if overlaps[best] >= iou_threshold:
      if np.asarray(difficult, bool)[best]:
        continue  # neither a true nor a false positive
      if not matched[image][best]:
        tp[rank], matched[image][best] = 1, True
      else:
        fp[rank] = 1
    else:
      fp[rank] = 1
  tp, fp = np.cumsum(tp), np.cumsum(fp)
  with np.errstate(invalid='ignore', divide='ignore'):
    recall = tp / num_positives if num_positives else np.full(len(tp), np.nan)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  return precision, recall, num_positives


def voc_ap(detections: Sequence[Sequence[Any]], ground_truth: Mapping[Any, tuple],
           iou_threshold: float = 0.5, use_07_metric: bool = True) -> float:
  """The AP of one class.

  Args:
    detections: rows (image_id, score, x0, y0, x1, y1), VOC pixel coordinates.
    ground_truth: {image_id: (boxes (G, 4), difficult (G,))} of this class, VOC
      pixel coordinates (1-based, inclusive); images without boxes of the class
      may be left out or given (G = 0).
    iou_threshold: the overlap a match needs (>=).
    use_07_metric: 11-point AP (VOC2007) or the area (VOC2010+).

  Returns:
    The AP, or NaN when the class has no non-difficult box.
  """
  precision, recall, num_positives = precision_recall(detections, ground_truth,
                                                      iou_threshold)
  if not num_positives:
    return float('nan')
  return average_precision(precision, recall, use_07_metric)


def voc_map(detections: Mapping[Any, Sequence[Sequence[Any]]],
            ground_truth: Mapping[Any, Mapping[Any, tuple]],
            iou_threshold: float = 0.5, use_07_metric: bool = True) -> dict:
  """{'map': the mean AP over the classes that have boxes, 'ap': {class: AP},
  'classes_without_boxes': [...]} for per-class `voc_ap` inputs (a class with
  boxes but no detections has AP 0)."""
  aps = {name: voc_ap(detections.get(name, ()), boxes, iou_threshold,
                      use_07_metric) for name, boxes in ground_truth.items()}
  scored = [ap for ap in aps.values() if not np.isnan(ap)]
  return {'map': float(np.mean(scored)) if scored else float('nan'), 'ap': aps,
          'classes_without_boxes': [name for name, ap in aps.items()
                                    if np.isnan(ap)]}
