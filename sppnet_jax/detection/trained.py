"""A trained detection workdir put to use on whole images: `load_image_detector`
(the Python API's `sppnet_jax.load_detector`), --mode=detect and
--mode=export, for either training method. Reads no data set: the config and
class names come from the workdir's checkpoints, the backbone from
config.detection.backbone.
"""

import math
import os

from sppnet_jax.core import checkpoints
from sppnet_jax.detection.backbone import load_backbone
from sppnet_jax.detection.config import base_config, parse_sizes
from sppnet_jax.detection.inference import detect_mode
from sppnet_jax.detection.inference import export as detector_export
from sppnet_jax.detection.inference.image_detector import (MIN_SCORE,
                                                           ImageDetector)
from sppnet_jax.detection.pipeline import (DetectionRun, conv5_of,
                                           is_end_to_end, load_trained,
                                           pooling_of)
from sppnet_jax.detection.proposals import job as proposal_job
from sppnet_jax.detection.training import end_to_end, finetune
from sppnet_jax.errors import CheckpointNotFoundError


def _saved_run(workdir: str) -> tuple[object, tuple[str, ...]]:
  """(config, class names) saved with the fine-tuning (or end-to-end)
  checkpoints of a detection workdir."""
  for training in (finetune.FOLDER, end_to_end.FOLDER):
    try:
      folder, step = checkpoints.locate_checkpoint(
          os.path.join(workdir, training))
      break
    except CheckpointNotFoundError:
      continue
  else:
    raise CheckpointNotFoundError(
        f'no trained detector in {workdir} (no {finetune.FOLDER}/ or '
        f'{end_to_end.FOLDER}/ checkpoints): pass the --workdir of a '
        'detection run trained with --mode=train.') from None
  manager = checkpoints.open_directory(folder)
  try:
    metadata = checkpoints.read_metadata(
        manager, manager.latest_step() if step is None else step)
  finally:
    manager.close()
  return (checkpoints.saved_config(metadata, base_config()),
          tuple(metadata['class_names']))


def load_image_detector(path, config=None) -> ImageDetector:
  """The trained detector of the detection workdir `path`, for whole images:
  with `config` (--mode=detect: the recipe's, overrides included) or, by
  default, the config the run was trained with. Reads no data set.

  Raises:
    CheckpointNotFoundError: `path` holds no fine-tuned detector, or the
      backbone it was trained on (config.detection.backbone) is gone.
  """
  workdir = os.path.abspath(os.path.expanduser(os.fspath(path)))
  saved, class_names = _saved_run(workdir)
  config = config or saved
  try:
    backbone = load_backbone(config.detection.backbone)
  except CheckpointNotFoundError as error:
    raise CheckpointNotFoundError(
        f'the detector in {workdir} needs its backbone '
        f'{config.detection.backbone!r} (config.detection.backbone, relative '
        f'to the current directory): {error}') from None
  run = DetectionRun(config, workdir, backbone, class_names,
                     pooling_of(config, backbone), source=None)
  detector, step, conv5 = load_trained(run)
  min_score = config.test.min_score
  if math.isnan(min_score):
    min_score = MIN_SCORE['softmax' if is_end_to_end(config)
                          else config.detection.classifier]
  return ImageDetector(detector, conv5 or conv5_of(run),
                       proposal_job.settings_of(config), class_names,
                       min_score, step)


def detect(config, workdir: str, paths) -> int:
  """--mode=detect: the workdir's trained detector (`load_image_detector`
  with the recipe's config) on image files (JSON lines on stdout, drawings
  in WORKDIR/detect/); returns the number of unreadable files."""
  return detect_mode.detect_files(load_image_detector(workdir, config), paths,
                                  out_dir=os.path.join(workdir, 'detect'))


def export(config, workdir: str) -> str:
  """--mode=export: the workdir's trained detector (`load_image_detector`
  with the recipe's config) as jax.export artefacts in WORKDIR/export/, one
  per size of config.export.image_sizes (inference/export.py); returns the
  line to print."""
  image_detector = load_image_detector(workdir, config)
  buckets = detector_export.buckets_of(
      parse_sizes(config.export.image_sizes),
      image_detector.conv5)
  max_proposals = config.export.max_proposals or config.proposals.max_boxes
  path = detector_export.export_detector(
      image_detector, buckets, max_proposals, os.path.join(workdir, 'export'))
  return (f'exported the detector for {len(buckets)} image sizes '
          f'({", ".join(b.name for b in buckets)}), up to {max_proposals} '
          f'proposals, on {", ".join(detector_export.PLATFORMS)} -> {path}')
