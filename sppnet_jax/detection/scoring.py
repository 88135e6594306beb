"""A detector scored on a cached split: VOC07 11-point AP per class and mAP,
and COCO AP (pycocotools), every cached image counted exactly once.

Each process detects in its share of the images (every P-th from its index)
and the detections of all processes are gathered before scoring, so one
process or many give the same figures.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.experimental import multihost_utils

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection import evaluation
from sppnet_jax.detection.feature_cache import Conv5Store
from sppnet_jax.detection.proposals import ProposalStore


@dataclasses.dataclass(frozen=True)
class SplitScore:
  voc: dict  # evaluation.voc_map's result
  coco: dict  # evaluation.coco_ap's result
  num_images: int
  num_detections: int


def gather_rows(rows: np.ndarray) -> np.ndarray:
  """The (n_p, C) float64 rows of every process, concatenated in process
  order (the rows themselves with one process)."""
  if jax.process_count() == 1:
    return rows
  counts = multihost_utils.process_allgather(np.int64(len(rows)))
  longest = int(np.max(counts))
  padded = np.zeros((longest, rows.shape[1]), np.float64)
  padded[:len(rows)] = rows
  every = multihost_utils.process_allgather(padded)
  return np.concatenate([every[p, :int(n)] for p, n in enumerate(counts)])


def ground_truth(store: Conv5Store, image_ids, class_names) -> dict:
  """{class name: {image id: (VOC boxes (G, 4), difficult (G,))}}."""
  truth = {name: {} for name in class_names}
  for image_id in image_ids:
    cached = store.load(image_id, with_maps=False)
    voc = box_lib.to_voc(cached.gt_boxes)
    for k, name in enumerate(class_names):
      mine = cached.gt_labels == k
      truth[name][image_id] = (voc[mine], cached.gt_difficult[mine])
  return truth


def score_split(detector, store: Conv5Store, proposal_store: ProposalStore,
                class_names, *, process_index: int = 0,
                process_count: int = 1) -> SplitScore:
  image_ids = store.image_ids()
  rows = []
  for index in range(process_index, len(image_ids), process_count):
    cached = store.load(image_ids[index])
    proposals = proposal_store.load(image_ids[index],
                                    (cached.height, cached.width))
    found = detector.detect_from_maps(cached.scaled_maps(), proposals,
                                      cached.height, cached.width)
    for box, score, label in zip(found.boxes, found.scores, found.classes):
      rows.append((index, label, score, *box))
  rows = gather_rows(np.asarray(rows, np.float64).reshape(-1, 7))
  detections = {name: [] for name in class_names}
  for index, label, score, *box in rows:
    x0, y0, x1, y1 = box_lib.to_voc(np.asarray(box, np.float64))
    detections[class_names[int(label)]].append(
        (image_ids[int(index)], score, x0, y0, x1, y1))
  truth = ground_truth(store, image_ids, class_names)
  return SplitScore(evaluation.voc_map(detections, truth),
                    evaluation.coco_ap(detections, truth), len(image_ids),
                    len(rows))
