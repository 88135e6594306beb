"""Detection metrics: the VOC devkit's AP (`voc.py`), COCO AP by pycocotools
(`coco.py`), a detector scored on a split (`scoring.py`) and the per-class
report (`report.py`). `voc.py` and `coco.py` take plain rows and dicts and
import nothing of detection but `boxes`, so any detector can be scored with
them; `scoring.py` also imports data, features, proposals and inference."""

from sppnet_jax.detection.evaluation.coco import coco_ap
from sppnet_jax.detection.evaluation.voc import (average_precision,
                                                 precision_recall, voc_ap,
                                                 voc_map)

__all__ = ['voc_ap', 'voc_map', 'coco_ap', 'precision_recall',
           'average_precision']
