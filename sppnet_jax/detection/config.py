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
CLASSIFIERS = ('svm', 'softmax')
FEATURE_LAYERS = ('pool5', 'fc6', 'fc7')
FEATURE_DTYPES = ('float16', 'float32')
TRAINING_METHODS = ('pipeline', 'end_to_end')
SVD_METHODS = ('responses', 'weights')  # inference/svd.py
# end_to_end.train_layers: the first layer that learns (and every layer
# above it); 'fc6' keeps the conv layers frozen (the paper's setting).
TRAIN_LAYERS = ('fc6', 'conv3', 'conv2', 'all')


def base_config() -> ml_collections.ConfigDict:
  """Every field of a detection run, with its meaning."""
  config = ml_collections.ConfigDict()
  config.task = 'detection'

  # Data (detection/data/sources.py).
  # 'embedded': the generated set (a COCO folder made on first use);
  # 'coco_folder': data_dir/<split>/annotations.json + images;
  # 'voc/2007' (or 'voc/2012'): TFDS, prepared offline with
  # `python -m sppnet_jax.detection.data.prepare_voc`.
  config.dataset = 'embedded'
  # The embedded set's folder ('' = ~/.cache/sppnet_jax/embedded-detection-v2
  # or $SPPNET_DETECTION_DATA_DIR), the COCO folder, or the TFDS data_dir.
  config.data_dir = ''
  config.manual_dir = ''  # TFDS manual_dir (the VOC archives)
  config.train_split = 'train'  # VOC: 'train+validation' (trainval)
  config.eval_split = 'test'

  # Region proposals (detection/proposals/), one file per image in
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

  # The detector (the paper's section 4).
  config.detection = ml_collections.ConfigDict()
  # The classification SPP-net it starts from: a workdir (its best checkpoint)
  # or a step folder (WORKDIR/best/1000); relative to the current directory.
  config.detection.backbone = ''
  # True: when `backbone` holds no checkpoint, train it first with the
  # classification embedded default (configs/classification/tiny.py), as the
  # README's first command does. False: a missing backbone is an error.
  config.detection.train_backbone = False
  # The classification recipe that trains it (relative to the current
  # directory, like the backbone).
  config.detection.backbone_recipe = 'configs/classification/tiny.py'
  # Short sides of the whole-image conv5 maps: the paper's single scale 688, or
  # its five (480, 576, 688, 864, 1200).
  config.detection.scales = (688,)
  config.detection.size_step = 16  # each resized side a multiple of this
  # Which scale a box is pooled at: 'paper' (scaled area closest to
  # input_size^2) or 'authors_code' (side closest to 208).
  config.detection.scale_rule = 'paper'
  # Box -> conv5 cells: 'paper' (Appendix A, offset derived from ZF-5) or
  # 'authors_code' (spm_pool_caffe_mex's constants).
  config.detection.projection_rule = 'paper'
  # The backbone's training input side (0: the largest of its train_sizes).
  config.detection.input_size = 0
  # 'svm': per-class linear SVMs on fc7 (the paper); 'softmax': the
  # fine-tuned fc8's class probabilities. End-to-end training always scores
  # with its softmax (it trains no SVMs).
  config.detection.classifier = 'svm'
  # Difficult objects are ground truth for training (R-CNN's and SPP-net's
  # code); False drops them (Fast R-CNN).
  config.detection.use_difficult = True
  # How the detector is trained: 'pipeline' (the paper: conv5 cached, fc6-fc8
  # fine-tuned, SVMs, box regression; the sections features, finetune, svm,
  # bbox_regression) or 'end_to_end' (Fast R-CNN's one-stage training through
  # the region pyramid, conv layers included; the section end_to_end,
  # detection/training/end_to_end.py).
  config.detection.training = 'pipeline'

  # The conv5 cache (detection/features/cache.py): one file per image with
  # conv5 at every scale, and of the mirrored image for fine-tuning's flips.
  config.features = ml_collections.ConfigDict()
  config.features.dir = ''  # '' = WORKDIR/features
  config.features.dtype = 'float16'  # on disk: float16 | float32
  config.features.memory_mb = 4096  # maps kept in memory while fine-tuning

  # Fine-tuning fc6, fc7 and a new fc8 (detection/training/finetune.py). Defaults: the
  # authors' code (spp_finetune_voc.m + its Caffe solver).
  config.finetune = ml_collections.ConfigDict()
  config.finetune.num_steps = 90000  # authors: 3 x 30k iterations
  config.finetune.batch_size = 128  # regions per step, over all processes
  config.finetune.positive_fraction = 0.25
  config.finetune.fg_threshold = 0.5  # IoU >= this: the box's class
  config.finetune.bg_low = 0.1  # IoU in [bg_low, fg_threshold): background
  config.finetune.add_ground_truth = True
  config.finetune.flip = True  # half the regions from the mirrored image
  config.finetune.learning_rate = 1e-3  # authors; the paper: 1e-4 then 1e-5
  config.finetune.lr_drop_every = 30000  # steps between drops by lr_drop
  config.finetune.lr_drop = 0.1
  config.finetune.momentum = 0.9
  config.finetune.weight_decay = 5e-4
  config.finetune.bias_lr_multiplier = 2.0
  # Validation mAP (softmax scores) picks the best checkpoint: a split other
  # than the test split; '' = no validation, the last step is used.
  config.finetune.val_split = ''
  config.finetune.eval_every_steps = 10000
  config.finetune.log_every_steps = 500
  config.finetune.checkpoint_every_steps = 5000
  config.finetune.keep_latest_checkpoints = 2
  config.finetune.keep_best_checkpoints = 1

  # Per-class linear SVMs with hard-negative mining (detection/training/svm.py): the
  # authors' liblinear settings.
  config.svm = ml_collections.ConfigDict()
  config.svm.layer = 'fc7'  # pool5 | fc6 | fc7: the features they score
  # 'liblinear' (scikit-learn's: the authors' solver, 2.4x faster than ours
  # on a VOC-sized cache, benchmarks/svm.py) or 'jax' (svm.solve_svm).
  config.svm.solver = 'liblinear'
  config.svm.c = 1e-3
  config.svm.positive_weight = 2.0
  config.svm.bias_multiplier = 10.0
  config.svm.negative_iou = 0.3  # negatives: IoU below this with the class
  config.svm.hard_threshold = -1.0001
  config.svm.evict_threshold = -1.2
  config.svm.retrain_limit = 2000
  config.svm.tol = 1e-3

  # Class-specific box regression on pooled conv5
  # (detection/training/box_regression.py).
  config.bbox_regression = ml_collections.ConfigDict()
  # With detection.training = 'end_to_end': whether test time applies the
  # detector's own bbox_pred deltas (no ridge regressors are trained).
  config.bbox_regression.enabled = True
  config.bbox_regression.min_iou = 0.5  # the authors' code: > 0.5
  config.bbox_regression.ridge = 4000.0

  # End-to-end training (detection.training = 'end_to_end',
  # detection/training/end_to_end.py). Defaults: Fast R-CNN's (Girshick, ICCV
  # 2015, arXiv 1504.08083, and its released solver for VOC07).
  config.end_to_end = ml_collections.ConfigDict()
  config.end_to_end.num_steps = 40000  # Fast R-CNN: 30k at 1e-3, 10k at 1e-4
  config.end_to_end.images_per_batch = 2  # N, over all processes
  config.end_to_end.regions_per_image = 64  # R (N * R = 128 regions a step)
  config.end_to_end.positive_fraction = 0.25
  config.end_to_end.fg_threshold = 0.5  # IoU >= this: the box's class
  config.end_to_end.bg_low = 0.1  # IoU in [bg_low, fg_threshold): background
  config.end_to_end.add_ground_truth = True
  config.end_to_end.flip = True  # each image mirrored with probability 1/2
  # Training short sides: one scale, or a random one per image from several
  # (Fast R-CNN: 600; multi-scale 480, 576, 688, 864, 1200). () = the test
  # scales (detection.scales) when there is one.
  config.end_to_end.scales = ()
  # Images of a step are padded to one shape whose sides are multiples of
  # this (pixels): the number of compilations is the number of such shapes.
  config.end_to_end.bucket_step = 128
  config.end_to_end.train_layers = 'conv3'  # fc6 | conv3 | conv2 | all
  config.end_to_end.box_loss_weight = 1.0  # lambda of the multi-task loss
  # Regression targets are divided by these (zero means; Fast R-CNN's code).
  config.end_to_end.box_target_stds = (0.1, 0.1, 0.2, 0.2)
  config.end_to_end.learning_rate = 1e-3
  config.end_to_end.lr_drop_every = 30000  # steps between drops by lr_drop
  config.end_to_end.lr_drop = 0.1
  config.end_to_end.momentum = 0.9
  config.end_to_end.weight_decay = 5e-4
  config.end_to_end.bias_lr_multiplier = 2.0
  # Validation mAP picks the best checkpoint: a split other than the test
  # split; '' = no validation, the last step is used.
  config.end_to_end.val_split = ''
  config.end_to_end.eval_every_steps = 10000
  config.end_to_end.log_every_steps = 500
  config.end_to_end.checkpoint_every_steps = 5000
  config.end_to_end.keep_latest_checkpoints = 2
  config.end_to_end.keep_best_checkpoints = 1

  # Test time: per class NMS, then the best detections of the image.
  config.test = ml_collections.ConfigDict()
  config.test.nms_iou = 0.3
  config.test.max_per_image = 100
  config.test.pre_nms_per_class = 300  # best boxes per class NMS looks at
  config.test.batch_boxes = 1024  # regions per fc6/fc7 call
  # Low-rank fc6 and fc7 (Fast R-CNN's section 3.1; inference/svd.py): ()
  # runs them whole (the paper's head); (768, 512), the README's choice,
  # keeps ranks 768 and 512 of a full-width head (scaled with fc_dim for
  # narrow ones): fewer multiply-accumulates per region, no retraining. Used
  # by --mode=eval, --mode=detect and export.
  config.test.svd_ranks = ()
  # 'responses': the rank-r layers nearest the layers' outputs on regions of
  # training images (Zhang et al. 2015), sampled from the first svd_images
  # images of the training split, svd_regions proposals each; 'weights':
  # Fast R-CNN's SVD of the kernels, no samples.
  config.test.svd_method = 'responses'
  config.test.svd_images = 200
  config.test.svd_regions = 100
  # Detections scoring below it are left out of --mode=detect and
  # load_detector's detect (not of evaluation, which ranks them all); nan:
  # the classifier's own, a softmax probability of 0.5 or an SVM margin of 0.
  config.test.min_score = float('nan')

  # --mode=export (inference/export.py): one jax.export artefact per image
  # size HEIGHTxWIDTH, each taking the images at most that size with its
  # resized sizes at the scales (its aspect, to size_step), padded; the
  # default is VOC 2007's four commonest sizes.
  config.export = ml_collections.ConfigDict()
  config.export.image_sizes = '375x500,500x375,333x500,500x333'
  config.export.max_proposals = 0  # proposals per image; 0: proposals.max_boxes

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
                      'id>.npz files (format: sppnet_jax/detection/proposals/store.py).')
  if config.proposals.max_boxes < 1 or config.proposals.min_side < 1:
    raise ConfigError('config.proposals.max_boxes and min_side must be at '
                      'least 1.')
  _choice(config, 'detection.classifier', config.detection.classifier,
          CLASSIFIERS)
  _choice(config, 'svm.layer', config.svm.layer, FEATURE_LAYERS)
  _choice(config, 'svm.solver', config.svm.solver, ('liblinear', 'jax'))
  _choice(config, 'features.dtype', config.features.dtype, FEATURE_DTYPES)
  _choice(config, 'detection.scale_rule', config.detection.scale_rule,
          ('paper', 'authors_code'))
  _choice(config, 'detection.projection_rule',
          config.detection.projection_rule, ('paper', 'authors_code'))
  scales = tuple(config.detection.scales)
  if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
    raise ConfigError(f'config.detection.scales={scales} must be positive '
                      'integers (short sides in pixels), e.g. (688,).')
  if config.finetune.val_split and (
      config.finetune.val_split == config.eval_split):
    raise ConfigError(f'config.finetune.val_split={config.finetune.val_split!r}'
                      ' is the test split: the best checkpoint must not be '
                      'picked on test data; use another split or \'\'.')
  ft = config.finetune
  if ft.num_steps < 1 or ft.batch_size < 1 or ft.eval_every_steps < 1 or (
      ft.log_every_steps < 1 or ft.checkpoint_every_steps < 1):
    raise ConfigError('config.finetune.num_steps, batch_size, '
                      'eval_every_steps, log_every_steps and '
                      'checkpoint_every_steps must be at least 1.')
  if not 0 <= ft.bg_low <= ft.fg_threshold <= 1:
    raise ConfigError('config.finetune needs 0 <= bg_low <= fg_threshold <= 1, '
                      f'got {ft.bg_low} and {ft.fg_threshold}.')
  ranks = tuple(config.test.svd_ranks)
  if ranks and (len(ranks) != 2 or any(
      not isinstance(r, int) or r < 1 for r in ranks)):
    raise ConfigError(f'config.test.svd_ranks={ranks} must be () or two '
                      'positive ranks (fc6, fc7), e.g. (1024, 256).')
  _choice(config, 'test.svd_method', config.test.svd_method, SVD_METHODS)
  if config.test.svd_images < 1 or config.test.svd_regions < 1:
    raise ConfigError('config.test.svd_images and svd_regions must be at '
                      'least 1 (training images, and proposals of each, '
                      "that the 'responses' SVD samples).")
  _choice(config, 'detection.training', config.detection.training,
          TRAINING_METHODS)
  if config.detection.training == 'end_to_end':
    _validate_end_to_end(config)
  if config.proposals.num_workers < -1:
    raise ConfigError('config.proposals.num_workers must be -1 (one per core), '
                      '0 (in the main process) or a count.')
  parse_sizes(config.export.image_sizes)
  if config.export.max_proposals < 0:
    raise ConfigError('config.export.max_proposals must be 0 (proposals.'
                      'max_boxes) or a count.')


def parse_sizes(text: str) -> list[tuple[int, int]]:
  """config.export.image_sizes, '375x500,500x375' -> [(375, 500), (500,
  375)] (height x width), or a one-line ConfigError."""
  sizes = []
  for part in str(text).split(','):
    height, _, width = part.strip().partition('x')
    if not (height.isdigit() and width.isdigit() and int(height) > 0
            and int(width) > 0):
      raise ConfigError(f'config.export.image_sizes={text!r}: give positive '
                        'HEIGHTxWIDTH sizes separated by commas, e.g. '
                        "'375x500,500x375'.")
    sizes.append((int(height), int(width)))
  return sizes


def _validate_end_to_end(config) -> None:
  e2e = config.end_to_end
  _choice(config, 'end_to_end.train_layers', e2e.train_layers, TRAIN_LAYERS)
  for name in ('num_steps', 'images_per_batch', 'regions_per_image',
               'bucket_step', 'eval_every_steps', 'log_every_steps',
               'checkpoint_every_steps'):
    if not isinstance(e2e[name], int) or e2e[name] < 1:
      raise ConfigError(f'config.end_to_end.{name}={e2e[name]!r} must be a '
                        'positive integer.')
  if not 0 <= e2e.positive_fraction <= 1:
    raise ConfigError('config.end_to_end.positive_fraction='
                      f'{e2e.positive_fraction} must be in [0, 1].')
  if not 0 <= e2e.bg_low <= e2e.fg_threshold <= 1 or e2e.fg_threshold <= 0:
    raise ConfigError('config.end_to_end needs 0 <= bg_low <= fg_threshold <= '
                      f'1, fg_threshold > 0; got {e2e.bg_low} and '
                      f'{e2e.fg_threshold}.')
  scales = tuple(e2e.scales)
  if any(not isinstance(s, int) or s < 1 for s in scales):
    raise ConfigError(f'config.end_to_end.scales={scales} must be positive '
                      'integers (short sides in pixels), or () for the test '
                      'scale.')
  if not scales and len(tuple(config.detection.scales)) != 1:
    raise ConfigError('config.end_to_end.scales=() takes the test scale, but '
                      f'config.detection.scales={tuple(config.detection.scales)}'
                      ' has several: give the training scales.')
  stds = tuple(e2e.box_target_stds)
  if len(stds) != 4 or any(not s > 0 for s in stds):
    raise ConfigError(f'config.end_to_end.box_target_stds={stds} must be four '
                      'positive numbers, e.g. (0.1, 0.1, 0.2, 0.2).')
  if not e2e.box_loss_weight >= 0:
    raise ConfigError('config.end_to_end.box_loss_weight='
                      f'{e2e.box_loss_weight} must be >= 0.')
  if not e2e.learning_rate > 0 or e2e.lr_drop_every < 0:
    raise ConfigError('config.end_to_end.learning_rate must be positive and '
                      'lr_drop_every >= 0 (0: no drops).')
  if e2e.val_split and e2e.val_split == config.eval_split:
    raise ConfigError(f'config.end_to_end.val_split={e2e.val_split!r} is the '
                      'test split: the best checkpoint must not be picked on '
                      "test data; use another split or ''.")


def training_scales(config) -> tuple[int, ...]:
  """The short sides end-to-end training draws from."""
  return tuple(config.end_to_end.scales) or tuple(config.detection.scales)


def proposal_dir(config, workdir: str, split: str) -> str:
  """Where the proposals of `split` live."""
  root = config.proposals.dir or os.path.join(workdir, 'proposals')
  return os.path.join(os.path.abspath(os.path.expanduser(root)), split)


def splits_of(config) -> list[str]:
  """The splits a run reads: train, validation (if any), test; no repeats."""
  return list(dict.fromkeys(
      [config.train_split] + ([validation_split(config)]
                              if validation_split(config) else [])
      + [config.eval_split]))


def validation_split(config) -> str:
  """The split picking the best checkpoint of the configured training
  method ('' = none)."""
  if config.detection.training == 'end_to_end':
    return config.end_to_end.val_split
  return config.finetune.val_split


def feature_dir(config, workdir: str, split: str) -> str:
  """Where the conv5 cache of `split` lives."""
  root = config.features.dir or os.path.join(workdir, 'features')
  return os.path.join(os.path.abspath(os.path.expanduser(root)), split)
