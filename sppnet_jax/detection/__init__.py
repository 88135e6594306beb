"""SPP-net object detection (the paper's section 4): conv5 of a whole image
once, spatial pyramid pooling of ~2,000 region proposals on it, fine-tuned fc
layers, SVMs, box regression, NMS and VOC/COCO evaluation.

Rooms, each importing only the rooms listed before it (and `sppnet_jax.core`):

  config.py, boxes.py, stage_files.py   leaves: the config's fields and checks,
                 the one box convention (conversions, IoU, deltas), the files
                 the stages write (atomic writes, .npz, settings records,
                 per-image file names)
  backbone.py    the classification SPP-net a detector starts from (the only
                 place detection reaches `sppnet_jax.classification`)
  data/          TFDS VOC, COCO folders, the embedded set, prepare_voc
  proposals/     selective search and its ranking, the per-image store (also
                 the user-supplied format), the parallel resumable job
  features/      multi-scale conv5, region pooling and its padding policy, the
                 conv5 cache
  inference/     the fc head at test time, the detector, its linear models
                 (SVMs, box regressors), NMS, drawing, --mode=detect
  evaluation/    the VOC devkit's AP, COCO AP, scoring a split, the report
  training/      region labels and sampling, the fine-tuning step and loop,
                 SVMs with hard-negative mining, box regression
  pipeline.py    the stages in order, each resuming; main.py the modes

The public API users and tools call is exported here.
"""

from sppnet_jax.detection.boxes import (decode_deltas, encode_deltas,
                                        from_coco, from_voc, from_xyxy,
                                        iou_matrix, to_coco, to_voc, to_xyxy)
from sppnet_jax.detection.evaluation import coco_ap, voc_ap, voc_map
from sppnet_jax.detection.inference.nms import (batched_nms,
                                                batched_nms_padded, nms,
                                                nms_padded)

__all__ = ['voc_ap', 'voc_map', 'coco_ap', 'nms', 'batched_nms', 'nms_padded',
           'batched_nms_padded', 'encode_deltas', 'decode_deltas',
           'iou_matrix', 'from_voc', 'to_voc', 'from_coco', 'to_coco',
           'from_xyxy', 'to_xyxy']
