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

`coco_ap` scores the same inputs with pycocotools (the reference implementation
of the COCO metric: IoU 0.50:0.95, 101 recall points, no +1).
"""

import contextlib
import io
from typing import Any, Mapping, Sequence

import numpy as np


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """IoU of one box with each of `boxes`, VOC pixel convention (+1)."""
  ix0 = np.maximum(boxes[:, 0], box[0])
  iy0 = np.maximum(boxes[:, 1], box[1])
  ix1 = np.minimum(boxes[:, 2], box[2])
  iy1 = np.minimum(boxes[:, 3], box[3])
  iw = ix1 - ix0 + 1.0
  ih = iy1 - iy0 + 1.0
  inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
  union = ((box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
           + (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
           - inter)
  return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


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
    overlaps = _overlaps(box, boxes)
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


def average_precision(precision: np.ndarray, recall: np.ndarray,
                      use_07_metric: bool = True) -> float:
  """11-point interpolated AP (VOC2007), or the area under the interpolated
  curve (VOC2010+)."""
  if use_07_metric:
    points = []
    for t in np.arange(0.0, 1.1, 0.1):
      above = precision[recall >= t]
      points.append(above.max() if above.size else 0.0)
    return float(np.mean(points))
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  for i in range(len(mpre) - 2, -1, -1):
    mpre[i] = max(mpre[i], mpre[i + 1])
  steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


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
