"""The detection config: every field with its meaning (`base_config`), and the
checks that run before anything expensive, each failing with one line.

Recipes in configs/detection/ start from `base_config` and override what
differs; every field can be overridden on the command line
(--config.proposals.max_boxes=1000). `task = 'detection'` is how main.py tells
a detection recipe from a classification one.
"""

import os

import ml_collections

from sppnet_jax.errors import ConfigError

DATASETS = ('embedded', 'coco_folder', 'voc/2007', 'voc/2012')
PROPOSAL_METHODS = ('selective_search', 'precomputed')
PROPOSAL_PRESETS = ('rcnn_fast', 'opencv_fast')


def base_config() -> ml_collections.ConfigDict:
  """Every field of a detection run, with its meaning."""
  config = ml_collections.ConfigDict()
  config.task = 'detection'

  # Data (detection/data.py).
  # 'embedded': the generated set (a COCO folder made on first use);
  # 'coco_folder': data_dir/<split>/annotations.json + images;
  # 'voc/2007' (or 'voc/2012'): TFDS, prepared offline with
  # `python -m sppnet_jax.detection.prepare_voc`.
  config.dataset = 'embedded'
  # The embedded set's folder ('' = ~/.cache/sppnet_jax/embedded-detection-v1
  # or $SPPNET_DETECTION_DATA_DIR), the COCO folder, or the TFDS data_dir.
  config.data_dir = ''
  config.manual_dir = ''  # TFDS manual_dir (the VOC archives)
  config.train_split = 'train'  # VOC: 'train+validation' (trainval)
  config.eval_split = 'test'

  # Region proposals (detection/proposals.py), one file per image in
  # proposals.dir/<split>/ ('' = WORKDIR/proposals).
  config.proposals = ml_collections.ConfigDict()
  # 'selective_search': computed where missing (cached, resumable);
  # 'precomputed': user-supplied files only (a missing one is an error).
  config.proposals.method = 'selective_search'
  config.proposals.dir = ''
  config.proposals.preset = 'rcnn_fast'  # R-CNN's fast mode | OpenCV's
  config.proposals.max_boxes = 2000
  config.proposals.min_side = 20  # pixels (R-CNN's minBoxWidth)
  config.proposals.num_workers = -1  # processes per host; -1: one per core

  config.seed = 0
  return config


def _choice(config, field: str, value, choices) -> None:
  if value not in choices:
    raise ConfigError(f'config.{field}={value!r} is not one of {choices}: set '
                      f'--config.{field} to one of them.')


def validate_config(config: ml_collections.ConfigDict) -> None:
  _choice(config, 'dataset', config.dataset, DATASETS)
  _choice(config, 'proposals.method', config.proposals.method,
          PROPOSAL_METHODS)
  _choice(config, 'proposals.preset', config.proposals.preset,
          PROPOSAL_PRESETS)
  if config.dataset == 'coco_folder' and not config.data_dir:
    raise ConfigError('config.dataset=coco_folder needs --config.data_dir: the '
                      'folder holding <split>/annotations.json.')
  if config.proposals.method == 'precomputed' and not config.proposals.dir:
    raise ConfigError('config.proposals.method=precomputed needs '
                      '--config.proposals.dir: the folder of <split>/<image '
                      'id>.npz files (format: sppnet_jax/detection/proposals.py).')
  if config.proposals.max_boxes < 1 or config.proposals.min_side < 1:
    raise ConfigError('config.proposals.max_boxes and min_side must be at '
                      'least 1.')
  if config.proposals.num_workers < -1:
    raise ConfigError('config.proposals.num_workers must be -1 (one per core), '
                      '0 (in the main process) or a count.')


def proposal_dir(config, workdir: str, split: str) -> str:
  """Where the proposals of `split` live."""
  root = config.proposals.dir or os.path.join(workdir, 'proposals')
  return os.path.join(os.path.abspath(os.path.expanduser(root)), split)
