"""Base configuration shared by every recipe.

Recipes (zfnet.py, sppnet_single.py, sppnet_mult.py, tiny.py) import this file and
override what differs. Names follow the Flax ImageNet example where a field means
the same thing there (batch_size is global, num_train_steps=-1 derives from epochs).
Every field can be overridden on the command line, e.g. --config.batch_size=64.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Model.
  config.model = 'sppnet'  # 'sppnet' | 'zfnet'
  config.num_classes = 1000  # -1: take the class count from the data set
  config.spp_levels = (6, 3, 2, 1)
  config.dropout_rate = 0.5
  config.lrn = 'within_channel'  # authors' ZF-5 LRN | 'across_channel' | 'none'
  # 'caffe': the authors' N(0, 0.01) weights with their bias constants (the default,
  # to reproduce the paper); 'he': He-normal weights, zero biases (trains faster).
  config.initializer = 'caffe'
  config.width_multiplier = 1.0  # scales conv channels; 1.0 is ZF-5
  config.fc_dim = 4096
  config.dtype = 'float32'  # activation/matmul dtype: 'float32' | 'bfloat16'

  # Data.
  config.dataset = 'imagenet2012'  # 'embedded' | 'imagefolder' | any tfds name
  config.data_dir = ''  # tfds data_dir, or the image-folder root (train/, val/)
  config.manual_dir = ''  # tfds manual_dir (ImageNet archives); '' = tfds default
  config.train_split = 'train'
  config.eval_split = 'validation'
  config.train_sizes = (224,)  # one jit compilation per size
  config.size_schedule = 'epoch'  # multi-size: 'epoch' (paper) | 'step'
  config.eval_size = 224  # centre-crop side at evaluation
  config.eval_resize = 256  # short side before the centre crop
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
  # The test views (see sppnet_jax/eval_views.py): 'center' (short side to
  # eval_resize, eval_size centre crop), 'ten_view' (4 corners + centre and
  # their mirrors), 'full_image' (the whole image at its aspect ratio, short
  # side eval_resize), 'multi_scale' (scale_views at each of scales).
  config.eval.protocol = 'center'
  # Full images: each side (after resizing the short side) rounded to a
  # multiple of this, bounding the compilations (also used by --mode=predict).
  config.eval.full_image_step = 32
  config.eval.scales = (224, 256, 300, 360, 448, 560)  # multi_scale short sides
  config.eval.scale_views = 'full_image'  # multi_scale: center|ten_view|full_image
  config.eval.flip = False  # also the mirror image of center/full_image views

  return config
