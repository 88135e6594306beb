"""The classification config: every field with its meaning (`base_config`), and
the checks that run before anything expensive, each failing with one line.

Names follow the Flax ImageNet example where a field means the same thing there
(batch_size is global, num_train_steps=-1 derives from epochs). Every field can
be overridden on the command line, e.g. --config.batch_size=64.
"""

import ml_collections

from sppnet_jax.classification.model import MODELS
from sppnet_jax.core import architectures
from sppnet_jax.core.architectures import ARCHITECTURES, min_input_size
from sppnet_jax.core.projection import RULES as PROJECTION_RULES
from sppnet_jax.errors import ConfigError

# The test protocols of --mode=eval (see eval_views.py) and the views that
# multi_scale takes at each scale.
PROTOCOLS = ('center', 'ten_view', 'full_image', 'multi_scale',
             'feature_map_views')
VIEW_KINDS = ('center', 'ten_view', 'full_image')


def base_config() -> ml_collections.ConfigDict:
  """Every field of a classification run, with its meaning; the recipes in
  configs/classification/ start from this and override what differs."""
  config = ml_collections.ConfigDict()

  # Model.
  config.model = 'sppnet'  # 'sppnet' | 'nospp' (fixed pool5) | 'zfnet' (ZF-5's nospp)
  # The paper's network (Table 1, see core/architectures.py): 'zf5' |
  # 'convnet5' (Convnet*-5) | 'overfeat5' | 'overfeat7'.
  config.architecture = 'zf5'
  config.num_classes = 1000  # -1: take the class count from the data set
  config.spp_levels = (6, 3, 2, 1)
  config.dropout_rate = 0.5
  config.lrn = 'within_channel'  # authors' ZF-5 LRN | 'across_channel' | 'none'
  # 'caffe': the authors' N(0, 0.01) weights with their bias constants (the default,
  # to reproduce the paper); 'he': He-normal weights, zero biases (trains faster).
  config.initializer = 'caffe'
  config.width_multiplier = 1.0  # scales conv channels; 1.0 is the paper's
  config.fc_dim = 4096
  config.dtype = 'float32'  # activation/matmul dtype: 'float32' | 'bfloat16'

  # Fine-tuning a trained run on this data (see warm_start.py).
  # A classification workdir (its best checkpoint, else its latest) or a step
  # folder (WORKDIR/best/1000): every layer but fc8 starts from it, fc8 is
  # drawn afresh with num_classes outputs. Its model fields other than
  # num_classes must equal this run's. '': start from the initializer.
  config.init_from = ''
  # The first layer that learns; those below keep their values (no update, no
  # decay): 'conv1' trains everything, 'fc6' freezes the convolutions (the
  # paper's detection fine-tuning), 'conv3' is Fast R-CNN's choice.
  config.trainable_from = 'conv1'

  # Data.
  config.dataset = 'imagenet2012'  # 'embedded' | 'imagefolder' | any tfds name
  config.data_dir = ''  # tfds data_dir, or the image-folder root (train/, val/)
  config.manual_dir = ''  # tfds manual_dir (ImageNet archives); '' = tfds default
  config.train_split = 'train'
  config.eval_split = 'validation'
  config.train_sizes = (224,)  # one jit compilation per size
  config.size_schedule = 'epoch'  # multi-size: 'epoch' (paper) | 'step'
  config.eval_size = 224  # center-crop side at evaluation
  config.eval_resize = 256  # short side before the center crop
  config.crop_min_area = 0.08  # random-resized crop: area fraction range
  config.crop_aspect_range = (3. / 4., 4. / 3.)
  config.shuffle_buffer_size = 16_384
  config.deterministic = True  # tf.data determinism (exact resume needs it)
  config.cache_eval = False  # keep decoded eval batches in memory after a pass
  config.data_threads = 0  # tf.data private thread pool; 0: one per CPU core
  config.resize_antialias = False  # as the authors' Caffe resize; on costs ~2x CPU

  # Optimisation.
  config.batch_size = 256  # global, over all devices and processes
  config.eval_batch_size = 256
  config.num_epochs = 160
  config.num_train_steps = -1  # -1: num_epochs * steps_per_epoch
  config.learning_rate = 0.01  # peak, reached after warm-up
  config.warmup_epochs = 0.0
  config.min_learning_rate_ratio = 0.0  # cosine floor, as a fraction of the peak
  config.momentum = 0.9
  config.weight_decay = 1e-4  # not applied to biases
  config.bias_lr_multiplier = 1.0  # the authors' Caffe solver used 2.0
  config.label_smoothing = 0.0

  # Loop.
  config.seed = 0
  config.steps_per_eval = -1  # -1: the whole validation split
  config.eval_every_steps = -1  # -1: at the end of every epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  config.profile_steps = 5  # a profiler trace of this many steps (0: none)
  config.profile_first_step = 10  # ... from this step, then hourly
  config.keep_best_checkpoints = 1
  config.keep_latest_checkpoints = 2
  # A workdir resumes only with the config it was started with (apart from
  # logging, saving and data-location fields); True resumes with the changes.
  config.allow_config_change = False


  # Eval-only mode (--mode=eval); evaluation during training is always `center`.
  config.eval = ml_collections.ConfigDict()
  config.eval.checkpoint_step = -1  # -1: the best checkpoint; N: step N
  config.eval.checkpoint_path = ''  # a step folder (e.g. OTHER_WORKDIR/best/1000)
  # The test views (see eval_views.py): 'center' (short side to
  # eval_resize, eval_size center crop), 'ten_view' (4 corners + center and
  # their mirrors), 'full_image' (the whole image at its aspect ratio, short
  # side eval_resize), 'multi_scale' (scale_views at each of scales),
  # 'feature_map_views' (the paper's 3.1.5: at each of scales, conv5 of the
  # whole image once, then eval_size windows pooled from it: center, 4 corners,
  # 4 side middles, and the same of the mirror image).
  config.eval.protocol = 'center'
  # Full images: each side (after resizing the short side) rounded to a
  # multiple of this, bounding the compilations (also used by --mode=predict).
  config.eval.full_image_step = 32
  config.eval.scales = (224, 256, 300, 360, 448, 560)  # multi_scale short sides
  config.eval.scale_views = 'full_image'  # multi_scale: center|ten_view|full_image
  config.eval.flip = False  # also the mirror image of center/full_image views
  # feature_map_views: also the whole image (and its mirror) at each scale.
  config.eval.feature_map_full_image = False
  # feature_map_views: windows -> conv5 cells, 'paper' | 'authors_code'.
  config.eval.projection = 'paper'

  return config


_CHOICES = {
    'model': tuple(MODELS),
    'architecture': tuple(ARCHITECTURES),
    'lrn': ('within_channel', 'across_channel', 'none'),
    'initializer': ('caffe', 'he'),
    'dtype': ('float32', 'bfloat16'),
    'size_schedule': ('epoch', 'step'),
}


def validate_config(config: ml_collections.ConfigDict) -> None:
  for field, choices in _CHOICES.items():
    if config[field] not in choices:
      raise ConfigError(f'config.{field}={config[field]!r} is not one of {choices}: '
                       f'set --config.{field} to one of them.')
  sizes = tuple(config.train_sizes)
  smallest = min_input_size(config.architecture)
  if not sizes or min(sizes + (config.eval_size,)) < smallest:
    raise ConfigError(
        f'train_sizes={sizes} and eval_size={config.eval_size} must be at least '
        f'{smallest} (the smallest input {ARCHITECTURES[config.architecture].title} '
        'accepts): raise them.')
  if config.eval_resize < config.eval_size:
    raise ConfigError(f'config.eval_resize={config.eval_resize} is smaller than '
                     f'config.eval_size={config.eval_size}: the center crop must fit.')
  if not config.spp_levels or min(config.spp_levels) < 1:
    raise ConfigError(f'config.spp_levels={tuple(config.spp_levels)} needs positive '
                     'levels, e.g. --config.spp_levels="(6, 3, 2, 1)".')
  architectures.layers_below(config.architecture, config.trainable_from)
  _validate_eval_protocol(config)
  if config.log_every_steps < 1:
    raise ConfigError('config.log_every_steps must be at least 1.')
  for field in ('batch_size', 'eval_batch_size'):  # Global: JAX checks the
    if config[field] < 1:  # multiple of the device count once it has started.
      raise ConfigError(f'config.{field}={config[field]} must be a positive '
                        f'multiple of the device count: set --config.{field} '
                        'to one, e.g. 256.')


def _validate_eval_protocol(config) -> None:
  protocol, views = config.eval.protocol, config.eval.scale_views
  if protocol not in PROTOCOLS:
    raise ConfigError(f'config.eval.protocol={protocol!r} is not one of {PROTOCOLS}: '
                     'set --config.eval.protocol to one of them.')
  if config.eval.full_image_step < 1:
    raise ConfigError('config.eval.full_image_step must be at least 1.')
  if protocol == 'feature_map_views':
    _validate_feature_map_views(config)
  if protocol == 'multi_scale':
    if views not in VIEW_KINDS:
      raise ConfigError(f'config.eval.scale_views={views!r} is not one of '
                       f'{VIEW_KINDS}: set --config.eval.scale_views to one of them.')
    scales = tuple(config.eval.scales)
    least = (config.eval_size if views != 'full_image'
             else min_input_size(config.architecture))
    if not scales or min(scales) < least:
      raise ConfigError(f'config.eval.scales={scales} must be at least {least} for '
                       f'{views} views: raise them, e.g. --config.eval.scales='
                       '"(224, 256, 300, 360, 448, 560)".')
  full_images = protocol == 'full_image' or (protocol == 'multi_scale'
                                             and views == 'full_image')
  if full_images and not MODELS[config.model].any_input_size:
    raise ConfigError('full-image views need SPP-net: a no-SPP net\'s fc6 fixes '
                     'its input at eval_size; use --config.eval.protocol=center or ten_view '
                     '(or multi_scale with --config.eval.scale_views=ten_view).')


def _validate_feature_map_views(config) -> None:
  scales = tuple(config.eval.scales)
  if not scales or min(scales) < config.eval_size:
    raise ConfigError(f'config.eval.scales={scales} must be at least eval_size='
                      f'{config.eval_size} for feature_map_views (the views are '
                      'eval_size windows of the resized image): raise them.')
  if config.eval.projection not in PROJECTION_RULES:
    raise ConfigError(f'config.eval.projection={config.eval.projection!r} is not '
                      f'one of {PROJECTION_RULES}: set --config.eval.projection '
                      'to one of them.')
  if not MODELS[config.model].any_input_size:
    raise ConfigError('feature_map_views need SPP-net: a no-SPP net\'s fc6 takes '
                      'its pool5 of one input size only; use --config.model=sppnet.')


def resolve_config(config: ml_collections.ConfigDict,
                   info) -> ml_collections.ConfigDict:
  """A validated copy with num_classes taken from the data where it is -1."""
  config = ml_collections.ConfigDict(config.to_dict())
  validate_config(config)
  if config.num_classes == -1:
    config.num_classes = info.num_classes
  elif config.num_classes != info.num_classes:
    raise ConfigError(
        f'config.num_classes={config.num_classes} but the {config.dataset} data has '
        f'{info.num_classes} classes: set --config.num_classes={info.num_classes} '
        '(or -1 to follow the data).')
  return config
