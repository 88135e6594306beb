"""The classification input pipelines: augmented training batches and padded,
masked evaluation batches, from any source of `core.data.sources`.

Sources: image folders (`data_dir/train/<class>/*`, `data_dir/val/...`), the
embedded set (an image folder the project draws itself, see `embedded_data`),
and TFDS data sets (`imagenet2012` or any image-classification builder) read as
raw encoded bytes. All feed the same decode/augment stage:

* train: fused decode-and-crop of a random "inception" box (area
  `crop_min_area`..1, aspect `crop_aspect_range`; a center crop when sampling
  fails), random horizontal flip, resize to the crop size `max(train_sizes)`,
  then, for a smaller training size, the *same* crop resized again (the paper's
  multi-size training: 224 crops, and the same crops at 180).
* eval: resize the short side to `eval_resize` (aspect kept), center crop
  `eval_size`. Not random.

Images leave the pipeline as uint8 (normalisation happens on device); labels are
int32. Every batch has exactly `local_batch_size` examples.

Determinism and exact resume. Every example's crop and flip come from a key
folded from (seed, epoch, process, position in the epoch), and the record order
is the source's stateless shuffle (see `core.data.sources`). So
`train_dataset(..., skip_batches=k)` yields exactly the batches k, k+1, ... of
the un-skipped dataset, and the skip happens before any image is read. This
holds when `config.deterministic` is True (the default; with False, TFDS
interleaves its files in a non-deterministic order).

Multiple processes read disjoint shards (see `core.data.sources`). Corrupt
images never stop a run (see `core.data.corrupt`): in training the gap is
filled with the next good image, in evaluation the image is skipped, and both
are counted in `num_skipped_images()`; evaluation pads every shard with masked
examples to `num_eval_batches()` batches.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import tensorflow as tf

from sppnet_jax.classification import embedded_data
from sppnet_jax.core.data import corrupt, image_ops, padding, sources
from sppnet_jax.core.data.options import AUTOTUNE, dataset_options, no_autograph
from sppnet_jax.errors import DataError

num_skipped_images = corrupt.num_skipped_images
reset_skipped_images = corrupt.reset_skipped_images


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  num_classes: int
  class_names: tuple[str, ...]
  num_train_examples: int  # whole split, all processes
  num_eval_examples: int  # whole split, all processes


def prepare_data(config) -> None:
  """Makes the embedded data set if the config asks for it and it is not there
  yet: the one step that writes data, called by training and eval mode before
  the source is opened."""
  if config.dataset == 'embedded':
    embedded_data.ensure_embedded_dataset(config.data_dir or None)


def open_source(config):
  """The configured source, listed or opened once; it writes nothing."""
  if config.dataset == 'embedded':
    root = config.data_dir or embedded_data.default_root()
    if not embedded_data.is_complete(root):
      raise DataError(
          f'the embedded data set is not at {root}: training makes it (python '
          'main.py --workdir=DIR), or point --config.data_dir at a copy.')
    return sources.ImageFolderSource(root, config.train_split, config.eval_split)
  if config.dataset == 'imagefolder':
    if not config.data_dir:
      raise DataError(
          "config.dataset='imagefolder' needs a data directory: pass "
          '--config.data_dir=/path/to/images holding train/<class>/* and '
          'val/<class>/* (or use --config.dataset=embedded).')
    return sources.ImageFolderSource(config.data_dir, config.train_split,
                                     config.eval_split)
  return sources.TfdsSource(
      config.dataset, data_dir=config.data_dir,
      manual_dir=config.get('manual_dir', ''), train_split=config.train_split,
      eval_split=config.eval_split,
      shuffle_buffer_size=int(config.shuffle_buffer_size))


def get_dataset_info(config, source=None) -> DatasetInfo:
  """Class count/names and whole-split example counts of the configured data."""
  source = source or open_source(config)
  return DatasetInfo(num_classes=len(source.class_names),
                     class_names=tuple(source.class_names),
                     num_train_examples=source.num_train_examples,
                     num_eval_examples=source.num_eval_examples)


def train_dataset(config, *, epoch: int, image_size: int | Sequence[int],
                  local_batch_size: int, steps: int, skip_batches: int = 0,
                  process_index: int = 0, process_count: int = 1,
                  source=None) -> tf.data.Dataset:
  """The training batches of one epoch for this process.

  Args:
    config: the experiment config (data fields, seed, deterministic).
    epoch: epoch number; selects the shuffle and the augmentation keys.
    image_size: output side; crops are made at `max(config.train_sizes)` and
      resized to `image_size` when that is smaller. A sequence of sizes
      alternates per batch (size_schedule='step'): batch b of the epoch, counted
      before any skip, gets `image_size[b % len(image_size)]`, resized from
      the same crop.
    local_batch_size: examples per batch in this process.
    steps: batches in the (un-skipped) epoch, the same on every process; the
      process's shard is repeated (reshuffled) as often as needed.
    skip_batches: leave out the first batches (resume mid-epoch) without reading
      their images; the result is exactly batches `skip_batches..steps-1`.
    process_index: this process.
    process_count: number of processes.
    source: the opened source (default: `open_source(config)`).

  Returns:
    A dataset of `steps - skip_batches` dicts {'image': uint8
    [local_batch_size, image_size, image_size, 3], 'label': int32
    [local_batch_size]}.
  """
  sources.check_process(process_index, process_count)
  if local_batch_size < 1 or steps < 0 or skip_batches < 0:
    raise ValueError(
        f'Need local_batch_size >= 1, steps >= 0, skip_batches >= 0; got '
        f'{local_batch_size}, {steps}, {skip_batches}.')
  source = source or open_source(config)
  crop_size = int(max(config.train_sizes))
  batch_sizes = (tuple(int(size) for size in image_size)
                 if isinstance(image_size, (tuple, list)) else ())
  image_size = crop_size if batch_sizes else int(image_size)
  num_batches = max(steps - skip_batches, 0)
  start = min(skip_batches, steps) * local_batch_size
  end = steps * local_batch_size
  # Positions past `end`: a look-ahead for filling the gaps of corrupt images
  # found at the very end of the epoch.
  margin = 2 * local_batch_size + end // 100
  ds, describe = source.train_records(
      seed=config.seed, epoch=epoch, process_index=process_index,
      process_count=process_count, start=start, end=end + margin)
  antialias = bool(config.get('resize_antialias', False))
  decode = functools.partial(
      _decode_train, is_path=source.is_path,
      base_key=sources.stateless_key(config.seed, epoch, process_index),
      crop_size=crop_size, image_size=image_size,
      area_range=(float(config.crop_min_area), 1.0),
      aspect_range=tuple(float(a) for a in config.crop_aspect_range),
      fallback_ratio=float(config.eval_size) / float(config.eval_resize),
      antialias=antialias)
  ds = corrupt.decoded_batches(ds, decode, local_batch_size, kind='train',
                               start=start, end=end, describe=describe,
                               fill_gaps=True)
  # Batches grow where gaps were filled: cut them again.
  ds = ds.rebatch(local_batch_size, drop_remainder=True)
  ds = ds.concatenate(corrupt.error_dataset(
      ds.element_spec, 'Too many unreadable images at the end of the epoch to '
      'fill the batches; check the data set for corrupt files.'))
  ds = ds.take(num_batches)
  if batch_sizes:
    ds = _alternate_batch_sizes(ds, batch_sizes, crop_size, skip_batches,
                                antialias)
  ds = ds.prefetch(AUTOTUNE)
  return ds.with_options(dataset_options(config))


def _alternate_batch_sizes(ds, sizes, crop_size, first_batch, antialias):
  """Resizes batch b (b counted from the epoch start) to sizes[b % len(sizes)]."""
  table = tf.constant(sizes, tf.int32)

  def resize(index, batch):
    size = table[tf.cast(index % len(sizes), tf.int32)]
    image = tf.cond(
        size == crop_size, lambda: batch['image'],
        lambda: image_ops.round_to_uint8(
            image_ops.resize_bilinear(batch['image'], [size, size], antialias)))
    image.set_shape([batch['image'].shape[0], None, None, 3])
    return dict(batch, image=image)

  return ds.enumerate(start=first_batch).map(resize, num_parallel_calls=AUTOTUNE)


def eval_dataset(config, *, local_batch_size: int, process_index: int = 0,
                 process_count: int = 1, source=None) -> tf.data.Dataset:
  """The evaluation batches of this process's shard of the eval split.

  Every example of the split is in exactly one process's shard. The last batch
  of a shard is padded with masked examples (zeros, label 0, mask False), and a
  shorter shard gets fully masked batches, so every process yields
  `num_eval_batches(config, ...)` batches. Unreadable images are skipped (not
  counted as examples), logged and counted in `num_skipped_images('eval')`.

  Each iteration is a new pass over the files. With `config.cache_eval`, the
  dataset keeps its decoded batches in memory after its first complete pass, so
  later passes over the same dataset object read no files: build it once per
  run and iterate it at every evaluation.

  Returns:
    A dataset of dicts {'image': uint8 [B, eval_size, eval_size, 3], 'label':
    int32 [B], 'mask': bool [B]}, B = local_batch_size.
  """
  sources.check_process(process_index, process_count)
  if local_batch_size < 1:
    raise ValueError(f'local_batch_size must be >= 1, got {local_batch_size}.')
  size, resize = int(config.eval_size), int(config.eval_resize)
  if resize < size:
    raise ValueError(f'config.eval_resize ({resize}) must be >= '
                     f'config.eval_size ({size}).')
  source = source or open_source(config)
  num_batches = num_eval_batches(config, local_batch_size=local_batch_size,
                                 process_count=process_count, source=source)
  ds, describe = source.eval_records(process_index=process_index,
                                     process_count=process_count)
  decode = functools.partial(
      _decode_eval, is_path=source.is_path, size=size, resize=resize,
      antialias=bool(config.get('resize_antialias', False)))
  ds = corrupt.decoded_batches(ds, decode, local_batch_size, kind='eval',
                               start=0, describe=describe, fill_gaps=False)
  # Only the last batch is short (the sentinel and trailing unreadable images
  # are gone); rebatch is a no-op for the full ones.
  ds = ds.rebatch(local_batch_size)
  ds = ds.map(no_autograph(functools.partial(padding.pad_batch,
                                             size=local_batch_size)))
  blank = tf.data.Dataset.from_tensors({
      'image': tf.zeros([local_batch_size, size, size, 3], tf.uint8),
      'label': tf.zeros([local_batch_size], tf.int32),
      'mask': tf.zeros([local_batch_size], tf.bool)}).repeat()
  ds = ds.concatenate(blank).take(num_batches)
  if config.get('cache_eval', False):
    # Decoded batches stay in memory after the first complete pass (about
    # examples * eval_size^2 * 3 bytes: 20 MB for the embedded set, 7.5 GB for
    # ImageNet at 224). A pass cut short caches nothing.
    ds = ds.cache()
  return ds.prefetch(AUTOTUNE).with_options(dataset_options(config))


def num_eval_batches(config, *, local_batch_size: int, process_count: int,
                     source=None) -> int:
  """Batches that `eval_dataset` yields on every process."""
  source = source or open_source(config)
  largest_shard = -(-source.num_eval_examples // process_count)
  return max(1, -(-largest_shard // local_batch_size))


def _crop_window(shape, seed, area_range, aspect_range, fallback_ratio):
  """[y, x, h, w] of a random crop of an image of `shape` [h, w, c]."""
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape,
      bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
      seed=seed,
      min_object_covered=area_range[0],
      aspect_ratio_range=aspect_range,
      area_range=area_range,
      max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  hw = shape[:2]
  # All attempts failed: the op returns the whole image. Center crop instead.
  # (On [h, w] pairs: half the scalar ops, which cost ~1 us each.)
  failed = tf.reduce_all(tf.equal(size[:2], hw))
  side = tf.cast(fallback_ratio * tf.cast(tf.reduce_min(hw), tf.float32),
                 tf.int32)
  side = tf.maximum(side, 1)
  center = tf.concat([(hw - side + 1) // 2, tf.fill([2], side)], 0)
  return tf.where(failed, center, tf.concat([begin[:2], size[:2]], 0))


def _decode_train(e, *, is_path, base_key, crop_size, image_size, area_range,
                  aspect_range, fallback_ratio, antialias):
  key = tf.random.experimental.stateless_fold_in(
      tf.constant(base_key, tf.int64), e['pos'])
  crop_key, flip_key = tf.unstack(
      tf.random.experimental.stateless_split(key, 2))
  image_bytes = image_ops.read(e['data'], is_path)
  window = functools.partial(_crop_window, seed=crop_key,
                             area_range=area_range, aspect_range=aspect_range,
                             fallback_ratio=fallback_ratio)

  def jpeg():
    return tf.image.decode_and_crop_jpeg(
        image_bytes, window(tf.image.extract_jpeg_shape(image_bytes)),
        channels=3, dct_method='INTEGER_ACCURATE')

  def other():  # PNG, GIF, BMP, also under a .jpg name.
    image = tf.io.decode_image(image_bytes, channels=3,
                               expand_animations=False)
    y, x, h, w = tf.unstack(window(tf.shape(image)))
    return image[y:y + h, x:x + w]

  crop = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
  crop.set_shape([None, None, 3])
  image = image_ops.resize_bilinear(crop, [crop_size, crop_size], antialias)
  if image_size != crop_size:
    # Multi-size training: the same crop, at the smaller size.
    image = image_ops.resize_bilinear(image, [image_size, image_size], antialias)
  image = image_ops.round_to_uint8(image)
  # tf.image.stateless_random_flip_left_right's draw, flipping uint8 pixels.
  flip = tf.random.stateless_uniform([], seed=flip_key) < 0.5
  image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
  return {'pos': e['pos'], 'image': image, 'label': e['label']}


def _decode_eval(e, *, is_path, size, resize, antialias):
  def decode():
    image = image_ops.decode_record(e['data'], is_path)
    return image_ops.round_to_uint8(image_ops.center_crop(
        image_ops.resize_short_side(image, resize, antialias), size))

  if 'sentinel' in e:
    image = tf.cond(e['sentinel'], lambda: tf.zeros([size, size, 3], tf.uint8),
                    decode)
  else:
    image = decode()
  out = {'pos': e['pos'], 'image': image, 'label': e['label']}
  if 'sentinel' in e:
    out['sentinel'] = e['sentinel']
  return out
