"""A detector scored on a split whose conv5 maps are cached: VOC07 11-point
AP per class and mAP, and COCO AP (pycocotools), every image of the split
counted exactly once.

The ground truth comes from the data source (`split_ground_truth`), never from
the cache, so the metric depends on nothing the cache stores but the maps.
Each process detects in its share of the cached images (every P-th from its
index) and the detections of all processes are gathered before scoring, so
one process or many give the same figures. An image of the split without
cached maps has no detections: its objects count as misses.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.experimental import multihost_utils

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.data import sources
from sppnet_jax.detection.evaluation.coco import coco_ap
from sppnet_jax.detection.evaluation.voc import voc_map
from sppnet_jax.detection.features.cache import Conv5Store
from sppnet_jax.detection.proposals.store import ProposalStore


@dataclasses.dataclass(frozen=True)
class SplitScore:
  voc: dict  # voc.voc_map's result
  coco: dict  # coco.coco_ap's result
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


def split_ground_truth(source, split: str, class_names) -> dict:
  """{class name: {image id: (VOC boxes (G, 4), difficult (G,))}} of every
  readable image of `split` (all processes read the whole split), as
  `voc.voc_map` takes it."""
  truth = {name: {} for name in class_names}
  for example in sources.decoded_examples(source, split):
    voc = box_lib.to_voc(example.boxes)
    for k, name in enumerate(class_names):
      mine = example.labels == k
      truth[name][example.image_id] = (voc[mine], example.difficult[mine])
  return truth


def score_split(detector, store: Conv5Store, proposal_store: ProposalStore,
                ground_truth: dict, class_names, *, process_index: int = 0,
                process_count: int = 1) -> SplitScore:
  """The detector's score on the cached images of a split with
  `ground_truth` (`split_ground_truth`)."""
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
  return _scored(rows, image_ids, ground_truth, class_names)


def score_images(detector, conv5, source, split: str,
                 proposal_store: ProposalStore, ground_truth: dict,
                 class_names, *, process_index: int = 0,
                 process_count: int = 1) -> SplitScore:
  """The detector's score on a split read from the data source, conv5
  computed from each image by `conv5` (a `features.conv5.MultiScaleConv5`):
  for detectors whose conv layers are not the cached backbone's (end-to-end
  training). Each process detects in every P-th readable image."""
  image_ids, rows = [], []
  for index, example in enumerate(sources.decoded_examples(source, split)):
    image_ids.append(example.image_id)
    if index % process_count != process_index:
      continue
    height, width = example.image.shape[:2]
    proposals = proposal_store.load(example.image_id, (height, width))
    found = detector.detect_from_maps(conv5(example.image), proposals,
                                      height, width)
    for box, score, label in zip(found.boxes, found.scores, found.classes):
      rows.append((index, label, score, *box))
  return _scored(rows, image_ids, ground_truth, class_names)


def _scored(rows, image_ids, ground_truth: dict, class_names) -> SplitScore:
  """VOC and COCO scores of (image index, label, score, box) rows of this
  process, gathered over all processes."""
  rows = gather_rows(np.asarray(rows, np.float64).reshape(-1, 7))
  detections = {name: [] for name in class_names}
  for index, label, score, *box in rows:
    x0, y0, x1, y1 = box_lib.to_voc(np.asarray(box, np.float64))
    detections[class_names[int(label)]].append(
        (image_ids[int(index)], score, x0, y0, x1, y1))
  num_images = len({image for boxes in ground_truth.values()
                    for image in boxes} | set(image_ids))
  return SplitScore(voc_map(detections, ground_truth),
                    coco_ap(detections, ground_truth), num_images, len(rows))
