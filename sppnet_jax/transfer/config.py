"""The transfer config: every field with its meaning (`base_config`), and the
checks that run before anything expensive, each failing with one line.

Recipes in configs/transfer/ start from `base_config`; `task = 'transfer'`
is how main.py tells a transfer recipe (run with --mode=transfer) from the
others.
"""

import ml_collections

from sppnet_jax.transfer.features import LAYERS, VIEWS
from sppnet_jax.errors import ConfigError

# Multi-label sets, scored with VOC classification AP: 'embedded' (the
# embedded detection set, a class present where it has a non-difficult box)
# and TFDS 'voc/2007' (prepared offline, as for detection). Multi-class sets,
# scored with mean per-class accuracy over random splits: 'folder' (one
# sub-folder of images per class) and TFDS 'caltech101' (prepared offline,
# transfer/prepare_caltech.py; its train and test splits read as one set).
MULTILABEL_DATASETS = ('embedded', 'voc/2007')
MULTICLASS_DATASETS = ('folder', 'caltech101')
DATASETS = MULTILABEL_DATASETS + MULTICLASS_DATASETS


def base_config() -> ml_collections.ConfigDict:
  """Every field of a transfer run, with its meaning."""
  config = ml_collections.ConfigDict()
  config.task = 'transfer'

  # Data (transfer/data.py): one of DATASETS.
  config.dataset = 'embedded'
  # The embedded detection set's folder ('' = its default, made on first use),
  # the TFDS data_dir of voc/2007 or caltech101, or the root of the class
  # folders.
  config.data_dir = ''
  config.manual_dir = ''  # TFDS manual_dir (the VOC or Caltech archives)
  # Multi-label sets: the split the SVMs train on (C is cross-validated
  # inside it) and the split they are scored on. VOC 2007: 'train+validation'
  # (trainval) and 'test'.
  config.train_split = 'train'
  config.test_split = 'test'

  # The network: a classification SPP-net's workdir (its best checkpoint) or
  # step folder, relative to the current directory.
  config.backbone = ''
  # True: when `backbone` holds no checkpoint, train it first with
  # `backbone_recipe` (a classification recipe file).
  config.train_backbone = False
  config.backbone_recipe = 'configs/classification/tiny.py'

  # Features (transfer/features.py): the layer (spp6: the pyramid's 6 x 6
  # level, the paper's "pool5/7"; pool5: the whole pyramid; fc6; fc7), the
  # view (center: short side `size`, then the size x size center; warp: the
  # image resized to size x size; full: the whole image, short side `size`,
  # sides rounded to multiples of `full_image_step`).
  config.layer = 'spp6'
  config.view = 'full'
  config.size = 224
  config.full_image_step = 32
  # Views per batch: about this many pixels (16 images of 224 x 224).
  config.batch_pixels = 16 * 224 * 224
  # Features are kept in WORKDIR/features/ (float16, resumable) when True.
  config.cache_features = True

  # The SVMs (transfer/svms.py): C from `c_grid` by `folds`-fold
  # cross-validation on the training images; liblinear's tolerance.
  config.svm = ml_collections.ConfigDict()
  config.svm.c_grid = (0.1, 1.0, 10.0, 100.0)
  config.svm.folds = 3
  config.svm.tol = 1e-4
  config.seed = 0  # folds and random splits

  # Multi-class sets (transfer/splits.py): `num_splits` random splits of
  # `train_per_class` training and up to `test_per_class` test images per
  # class (Caltech101: 10, 30, 50).
  config.splits = ml_collections.ConfigDict()
  config.splits.num_splits = 10
  config.splits.train_per_class = 30
  config.splits.test_per_class = 50
  return config


def _choice(field: str, value, choices) -> None:
  if value not in choices:
    raise ConfigError(f'config.{field}={value!r} is not one of {choices}: set '
                      f'--config.{field} to one of them.')


def validate_config(config: ml_collections.ConfigDict) -> None:
  """One-line ConfigErrors for every field that cannot work."""
  if config.get('task') != 'transfer':
    raise ConfigError('a transfer recipe has task = "transfer" '
                      '(configs/transfer/*.py).')
  _choice('dataset', config.dataset, DATASETS)
  _choice('layer', config.layer, LAYERS)
  _choice('view', config.view, VIEWS)
  if config.dataset == 'folder' and not config.data_dir:
    raise ConfigError('config.dataset=folder needs --config.data_dir: the '
                      'folder holding one sub-folder of images per class.')
  if config.dataset in MULTILABEL_DATASETS and (
      not config.train_split or not config.test_split
      or config.train_split == config.test_split):
    raise ConfigError(f'config.train_split={config.train_split!r} and '
                      f'test_split={config.test_split!r} must be two '
                      'different splits.')
  if not config.backbone:
    raise ConfigError('transfer needs a classification SPP-net: set '
                      '--config.backbone to its workdir.')
  for field in ('size', 'full_image_step', 'batch_pixels'):
    value = config[field]
    if not isinstance(value, int) or value < 1:
      raise ConfigError(f'config.{field}={value!r} must be a positive '
                        'integer.')
  grid = tuple(config.svm.c_grid)
  if not grid or any(not isinstance(c, (int, float)) or c <= 0 for c in grid):
    raise ConfigError(f'config.svm.c_grid={grid} must be positive numbers, '
                      'e.g. (0.1, 1.0, 10.0).')
  if config.svm.folds < 2:
    raise ConfigError('config.svm.folds must be at least 2.')
  if config.svm.tol <= 0:
    raise ConfigError('config.svm.tol must be positive.')
  s = config.splits
  if s.num_splits < 1 or s.train_per_class < 1 or s.test_per_class < 1:
    raise ConfigError('config.splits.num_splits, train_per_class and '
                      'test_per_class must be at least 1.')
