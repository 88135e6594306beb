"""tf.data input pipelines: image folders, the embedded set and TFDS data sets.

One code path reads image folders (`data_dir/train/<class>/*`, `data_dir/val/...`)
and the embedded set (which is an image folder the project draws itself); another
reads TFDS data sets (`imagenet2012` or any image-classification builder) as raw
encoded bytes. Both feed the same decode/augment stage:

* train: fused decode-and-crop of a random "inception" box (area
  `crop_min_area`..1, aspect `crop_aspect_range`; a centre crop when sampling
  fails), random horizontal flip, resize to the crop size `max(train_sizes)`,
  then, for a smaller training size, the *same* crop resized again (the paper's
  multi-size training: 224 crops, and the same crops at 180).
* eval: resize the short side to `eval_resize` (aspect kept), centre crop
  `eval_size`. Not random.

Resizing is bilinear without antialiasing by default, like the authors' Caffe
pipeline (OpenCV's linear warp) and most reproductions; `resize_antialias=True`
filters properly when shrinking, at roughly half the CPU throughput. JPEGs are
decoded with the accurate integer IDCT (as PIL, OpenCV and Caffe do), not TF's
default fast one.

Images leave the pipeline as uint8 (normalisation happens on device); labels are
int32. Every batch has exactly `local_batch_size` examples.

Determinism and exact resume. All randomness is stateless: the record order of an
epoch is a shuffle seeded by (seed, epoch) and every example's crop and flip come
from a key folded from (seed, epoch, process, position in the epoch). So
`train_dataset(..., skip_batches=k)` yields exactly the batches k, k+1, ... of the
un-skipped dataset, and the skip happens before any image is read. This holds when
`config.deterministic` is True (the default; with False, TFDS interleaves its
files in a non-deterministic order). Image folders are shuffled exactly (a full
permutation of the file list); TFDS records are shuffled by file and then in a
`shuffle_buffer_size` buffer of encoded images. The decode stage itself is always ordered because the corrupt-image
handling below relies on that order.

Multiple processes. Process p of P reads a disjoint part of each split; the
parts' union is the whole split.
* image folders, train: the epoch's shuffled file list (the same on every
  process) cut into P even, contiguous parts, so shards change every epoch;
* image folders, eval: the sorted file list cut into P even, contiguous parts;
* TFDS: absolute-index slices `split[lo:hi]` of an even split (as
  `tfds.even_splits` does).
A training shard is repeated as needed so that every process yields the same
number of batches; evaluation pads with masked examples (see `eval_dataset`).

Corrupt images (unreadable, truncated, not an image) never stop a run. They are
dropped after the decode (`ignore_errors`), found by the gap they leave in the
position sequence, logged with their file name, and counted: see
`num_skipped_images()`.
* train: the gap is filled with copies of the next good example, so batch
  boundaries, the batch count and exact resume are unchanged.
* eval: a corrupt image is *not* counted as an example: it is skipped, logged
  and counted in `num_skipped_images('eval')`; the evaluation pads the shard with
  masked examples instead, so all processes still yield `num_eval_batches()`
  batches and every readable image is scored exactly once.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
import threading
from typing import Sequence, Any, Callable

import numpy as np
import tensorflow as tf

from sppnet_jax import embedded_data

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')
FOLDER_DATASETS = ('embedded', 'imagefolder')
# Keys of the images and labels in TFDS image-classification builders.
_TFDS_IMAGE_KEY = 'image'
_TFDS_LABEL_KEY = 'label'
_AUTOTUNE = tf.data.AUTOTUNE
# Our dataset functions use tf.cond explicitly: skip AutoGraph (faster tracing).
_nc = tf.autograph.experimental.do_not_convert


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  num_classes: int
  class_names: tuple[str, ...]
  num_train_examples: int  # whole split, all processes
  num_eval_examples: int  # whole split, all processes


# -----------------------------------------------------------------------------
# Skipped (corrupt) images.
# -----------------------------------------------------------------------------

_skip_lock = threading.Lock()
_skipped = collections.Counter()


def num_skipped_images(kind: str | None = None) -> int:
  """How many unreadable images were skipped so far in this process.

  Args:
    kind: 'train', 'eval', or None for both.
  """
  with _skip_lock:
    if kind is None:
      return sum(_skipped.values())
    return _skipped[kind]


def reset_skipped_images() -> None:
  with _skip_lock:
    _skipped.clear()


def _record_skips(kind: str, first: int, last: int,
                  describe: Callable[[int], str]) -> None:
  """Counts and logs the skipped positions first..last (inclusive)."""
  count = last - first + 1
  if count <= 0:
    return
  with _skip_lock:
    _skipped[kind] += count
    total = _skipped[kind]
  names = ', '.join(describe(p) for p in range(first, min(last, first + 4) + 1))
  if count > 5:
    names += f', ... ({count} in a row)'
  logging.warning('Skipped %d unreadable %s image(s): %s (%d skipped so far in '
                  'this process).', count, kind, names, total)


# -----------------------------------------------------------------------------
# Public API.
# -----------------------------------------------------------------------------


def get_dataset_info(config) -> DatasetInfo:
  """Class count/names and whole-split example counts of the configured data."""
  if _is_folder_dataset(config):
    train = _folder_split(config, 'train')
    evals = _folder_split(config, 'eval')
    return DatasetInfo(
        num_classes=len(train.class_names),
        class_names=train.class_names,
        num_train_examples=len(train.labels),
        num_eval_examples=len(evals.labels))
  builder = _tfds_builder(config)
  label = builder.info.features[_TFDS_LABEL_KEY]
  return DatasetInfo(
      num_classes=int(label.num_classes),
      class_names=tuple(label.names),
      num_train_examples=_tfds_num_examples(builder, config.train_split),
      num_eval_examples=_tfds_num_examples(builder, config.eval_split))


def train_dataset(config, *, epoch: int, image_size: int | Sequence[int],
                  local_batch_size: int,
                  steps: int, skip_batches: int = 0, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
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

  Returns:
    A dataset of `steps - skip_batches` dicts {'image': uint8
    [local_batch_size, image_size, image_size, 3], 'label': int32
    [local_batch_size]}.
  """
  _check_process(process_index, process_count)
  if local_batch_size < 1 or steps < 0 or skip_batches < 0:
    raise ValueError(
        f'Need local_batch_size >= 1, steps >= 0, skip_batches >= 0; got '
        f'{local_batch_size}, {steps}, {skip_batches}.')
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
  base_key = _base_key(config.seed, epoch, process_index)

  if _is_folder_dataset(config):
    split = _folder_split(config, 'train')
    order = _folder_train_order(
        len(split.labels), seed=config.seed, epoch=epoch,
        process_index=process_index, process_count=process_count,
        length=end + margin)
    ds, describe = _folder_source(split, order, start)
    is_path = True
  else:
    is_path = False
    ds, describe = _tfds_train_source(
        config, epoch=epoch, process_index=process_index,
        process_count=process_count, start=start, end=end + margin)

  decode = functools.partial(
      _decode_train, is_path=is_path, base_key=base_key, crop_size=crop_size,
      image_size=image_size,
      area_range=(float(config.crop_min_area), 1.0),
      aspect_range=tuple(float(a) for a in config.crop_aspect_range),
      fallback_ratio=float(config.eval_size) / float(config.eval_resize),
      antialias=bool(config.get('resize_antialias', False)))
  ds = _decoded_batches(ds, decode, local_batch_size, kind='train',
                        start=start, end=end, describe=describe,
                        fill_gaps=True)
  # Batches grow where gaps were filled: cut them again.
  ds = ds.rebatch(local_batch_size, drop_remainder=True)
  ds = ds.concatenate(_error_dataset(
      ds.element_spec, 'Too many unreadable images at the end of the epoch to '
      'fill the batches; check the data set for corrupt files.'))
  ds = ds.take(num_batches)
  if batch_sizes:
    ds = _alternate_batch_sizes(ds, batch_sizes, crop_size, skip_batches,
                                bool(config.get('resize_antialias', False)))
  ds = ds.prefetch(_AUTOTUNE)
  return ds.with_options(dataset_options(config))


def _alternate_batch_sizes(ds, sizes, crop_size, first_batch, antialias):
  """Resizes batch b (b counted from the epoch start) to sizes[b % len(sizes)]."""
  table = tf.constant(sizes, tf.int32)

  def resize(index, batch):
    size = table[tf.cast(index % len(sizes), tf.int32)]
    image = tf.cond(
        size == crop_size, lambda: batch['image'],
        lambda: _round_to_uint8(resize_bilinear(batch['image'], [size, size], antialias)))
    image.set_shape([batch['image'].shape[0], None, None, 3])
    return dict(batch, image=image)

  return ds.enumerate(start=first_batch).map(resize, num_parallel_calls=_AUTOTUNE)


def eval_dataset(config, *, local_batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> tf.data.Dataset:
  """The evaluation batches of this process's shard of the eval split.

  Every example of the split is in exactly one process's shard. The last batch
  of a shard is padded with masked examples (zeros, label 0, mask False), and a
  shorter shard gets fully masked batches, so every process yields
  `num_eval_batches(config, ...)` batches. Unreadable images are skipped (not
  counted as examples), logged and counted in `num_skipped_images('eval')`.

  With `config.cache_eval`, the same dataset object is returned on every call
  with the same arguments and keeps its decoded batches in memory after the
  first complete pass (later evaluations read no files).

  Returns:
    A dataset of dicts {'image': uint8 [B, eval_size, eval_size, 3], 'label':
    int32 [B], 'mask': bool [B]}, B = local_batch_size.
  """
  _check_process(process_index, process_count)
  if local_batch_size < 1:
    raise ValueError(f'local_batch_size must be >= 1, got {local_batch_size}.')
  size, resize = int(config.eval_size), int(config.eval_resize)
  if resize < size:
    raise ValueError(f'config.eval_resize ({resize}) must be >= '
                     f'config.eval_size ({size}).')
  cache_key = None
  if config.get('cache_eval', False):
    cache_key = (config.dataset, config.data_dir, config.eval_split, size,
                 resize, bool(config.get('resize_antialias', False)),
                 local_batch_size, process_index, process_count)
    if cache_key in _eval_cache:
      return _eval_cache[cache_key]
  num_batches = num_eval_batches(config, local_batch_size=local_batch_size,
                                 process_count=process_count)
  ds, describe, is_path = eval_records(config, process_index=process_index,
                                       process_count=process_count)
  decode = functools.partial(
      _decode_eval, is_path=is_path, size=size, resize=resize,
      antialias=bool(config.get('resize_antialias', False)))
  ds = _decoded_batches(ds, decode, local_batch_size, kind='eval', start=0,
                        describe=describe, fill_gaps=False)
  # Only the last batch is short (the sentinel and trailing unreadable images
  # are gone); rebatch is a no-op for the full ones.
  ds = ds.rebatch(local_batch_size)
  ds = ds.map(_nc(functools.partial(pad_batch, size=local_batch_size)))
  padding = tf.data.Dataset.from_tensors({
      'image': tf.zeros([local_batch_size, size, size, 3], tf.uint8),
      'label': tf.zeros([local_batch_size], tf.int32),
      'mask': tf.zeros([local_batch_size], tf.bool)}).repeat()
  ds = ds.concatenate(padding).take(num_batches)
  if cache_key is not None:
    # Decoded batches stay in memory after the first complete pass (about
    # examples * eval_size^2 * 3 bytes: 20 MB for the embedded set, 7.5 GB for
    # ImageNet at 224). A pass cut short caches nothing.
    ds = ds.cache()
  ds = ds.prefetch(_AUTOTUNE).with_options(dataset_options(config))
  if cache_key is not None:
    _eval_cache[cache_key] = ds
  return ds


_eval_cache: dict[tuple[Any, ...], tf.data.Dataset] = {}


def pad_batch(batch, *, size):
  """A batch of up to `size` examples padded to `size` with zeros and given a
  'mask' (False on the padding); `size` may be a Python int or a tensor."""
  n = tf.shape(batch['label'], out_type=tf.int64)[0]
  size = tf.cast(size, tf.int64) if isinstance(size, tf.Tensor) else size
  static_size = size if isinstance(size, int) else None
  out = {}
  for key, value in batch.items():
    padded = tf.cond(
        n < size,
        lambda v=value: tf.pad(v, [[0, size - n]] + [[0, 0]] * (v.shape.rank - 1)),
        lambda v=value: v)
    padded.set_shape(tf.TensorShape([static_size]).concatenate(value.shape[1:]))
    out[key] = padded
  out['mask'] = tf.range(size, dtype=tf.int64) < n
  return out


def eval_records(config, *, process_index: int, process_count: int):
  """(records, describe, is_path) of this process's shard of the eval split.

  `records` yields {'pos', 'data' (a file path if `is_path`, else encoded
  bytes), 'label', 'sentinel'}, ending with one sentinel, ready for
  `decode_and_skip_corrupt`; `describe(pos)` names a record in log lines.
  """
  if _is_folder_dataset(config):
    split = _folder_split(config, 'eval')
    lo, hi = _even_slice(len(split.labels), process_index, process_count)
    ds, describe = _folder_source(split, np.arange(lo, hi), 0, sentinel=True)
    return ds, describe, True
  ds, describe = _tfds_eval_source(config, process_index=process_index,
                                   process_count=process_count)
  return ds, describe, False


def decode_record(data, is_path: bool):
  """A record's image (read from its path first if `is_path`) as uint8 RGB."""
  return _decode_full(_read(data, is_path))


def num_eval_batches(config, *, local_batch_size: int,
                     process_count: int) -> int:
  """Batches that `eval_dataset` yields on every process."""
  if _is_folder_dataset(config):
    n = len(_folder_split(config, 'eval').labels)
  else:
    n = _tfds_num_examples(_tfds_builder(config), config.eval_split)
  largest_shard = -(-n // process_count)
  return max(1, -(-largest_shard // local_batch_size))


# -----------------------------------------------------------------------------
# Shared pieces.
# -----------------------------------------------------------------------------


def _is_folder_dataset(config) -> bool:
  return config.dataset in FOLDER_DATASETS


def _check_process(process_index, process_count):
  if not 0 <= process_index < process_count:
    raise ValueError(f'Bad process_index {process_index} for process_count '
                     f'{process_count}.')


def _even_slice(n: int, index: int, count: int) -> tuple[int, int]:
  return index * n // count, (index + 1) * n // count


def _base_key(seed: int, epoch: int, process_index: int) -> np.ndarray:
  """A [2] int64 stateless key for (seed, epoch, process)."""
  state = np.random.SeedSequence(
      [int(seed) & 0xFFFFFFFF, int(epoch), int(process_index), 0x5199]
  ).generate_state(2, np.uint32)
  return state.astype(np.int64)


def dataset_options(config) -> tf.data.Options:
  options = tf.data.Options()
  threads = int(config.get('data_threads', 0)) or os.cpu_count() or 1
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = True
  options.deterministic = bool(config.deterministic)
  options.experimental_optimization.map_parallelization = True
  return options


def _error_dataset(element_spec, message: str) -> tf.data.Dataset:
  """One element that fails with `message` when it is produced."""

  def fail(_):
    check = tf.debugging.Assert(tf.constant(False), [message])
    with tf.control_dependencies([check]):
      return tf.nest.map_structure(
          lambda s: tf.zeros([d if d is not None else 1 for d in s.shape],
                             s.dtype), element_spec)

  return tf.data.Dataset.range(1).map(_nc(fail))


def decode_and_skip_corrupt(ds, decode, *, kind, start, describe, fill_gaps):
  """Decodes; drops, counts and logs unreadable images (see module doc).

  `ds` yields {'pos': int64 position, 'data': bytes or path, 'label', and
  optionally 'sentinel'}; positions increase by one from `start`. A sentinel
  (one past the last position) is not decoded; it only lets us see a gap at the
  end, and is dropped here. Yields the decoded elements without 'pos'.
  """
  return _decoded_batches(ds, decode, 1, kind=kind, start=start,
                          describe=describe, fill_gaps=fill_gaps).unbatch()


def _decoded_batches(ds, decode, batch_size, *, kind, start, describe,
                     fill_gaps, end=None):
  """`decode_and_skip_corrupt`, batched: batches of `batch_size` readable
  images (with `fill_gaps`, larger where gaps were filled; without, the
  sentinel's batch is smaller). Looking for gaps once per batch instead of once
  per image saves most of the accounting's cost (~50 us per image on a 2-core
  EPYC, 3-5% of decoding an ImageNet JPEG).

  Gaps that start at or after `end` (in the look-ahead that fills a gap at the
  end of the epoch) are not counted, as no one uses the images after them.
  """
  ds = ds.map(_nc(decode), num_parallel_calls=_AUTOTUNE, deterministic=True)
  # A plain batch: its copies run on a prefetch thread anyway, and the
  # parallel one costs ~15 us more per image.
  ds = ds.ignore_errors().batch(batch_size)

  def report(positions, gaps):
    for pos, gap in zip(positions, gaps):
      if gap > 0 and (end is None or pos - gap < end):
        _record_skips(kind, int(pos - gap), int(pos - 1), describe)
    return np.int64(0)

  def account(last_seen, batch):
    pos = batch['pos']
    gaps = pos - tf.concat([last_seen[None], pos[:-1]], 0) - 1
    found = tf.reduce_any(gaps > 0)
    logged = tf.cond(
        found,
        lambda: tf.numpy_function(report, [pos, gaps], tf.int64,
                                  stateful=True),
        lambda: tf.constant(0, tf.int64))
    out = {k: v for k, v in batch.items() if k not in ('pos', 'sentinel')}
    if fill_gaps:  # A gap is filled with copies of the next good image.
      out = tf.cond(found, lambda: {k: tf.repeat(v, gaps + 1, axis=0)
                                    for k, v in out.items()}, lambda: out)
    if 'sentinel' in batch:
      keep = tf.logical_not(batch['sentinel'])
      out = tf.cond(tf.reduce_all(keep), lambda: out,
                    lambda: {k: tf.boolean_mask(v, keep) for k, v in out.items()})
    with tf.control_dependencies([logged]):
      return tf.identity(pos[-1]), out

  return ds.scan(tf.constant(start - 1, tf.int64), _nc(account))


def to_uint8(image):
  """Float pixels (0..255 scale) rounded and clipped to uint8."""
  return _round_to_uint8(tf.clip_by_value(image, 0.0, 255.0))


def _round_to_uint8(image):
  """`to_uint8` of pixels already in [0, 255], such as bilinear resizes of
  uint8 images: the clip (a third of the cost) would change nothing."""
  return tf.cast(tf.round(image), tf.uint8)


def resize_bilinear(image, size, antialias: bool):
  """Bilinear resize to float32. TF's kernel is ~1.5x faster on float32 than
  on uint8 input, even counting the cast, and bitwise the same."""
  return tf.image.resize(tf.cast(image, tf.float32), size, method='bilinear',
                         antialias=antialias)


def _read(data, is_path: bool):
  return tf.io.read_file(data) if is_path else data


def _decode_full(image_bytes):
  """Any supported format to uint8 RGB (JPEG decoded like PIL and Caffe)."""
  return tf.cond(
      tf.io.is_jpeg(image_bytes),
      lambda: tf.io.decode_jpeg(image_bytes, channels=3,
                                dct_method='INTEGER_ACCURATE'),
      lambda: tf.io.decode_image(image_bytes, channels=3,
                                 expand_animations=False))


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
  # All attempts failed: the op returns the whole image. Centre crop instead.
  # (On [h, w] pairs: half the scalar ops, which cost ~1 us each.)
  failed = tf.reduce_all(tf.equal(size[:2], hw))
  side = tf.cast(fallback_ratio * tf.cast(tf.reduce_min(hw), tf.float32),
                 tf.int32)
  side = tf.maximum(side, 1)
  centre = tf.concat([(hw - side + 1) // 2, tf.fill([2], side)], 0)
  return tf.where(failed, centre, tf.concat([begin[:2], size[:2]], 0))


def _decode_train(e, *, is_path, base_key, crop_size, image_size, area_range,
                  aspect_range, fallback_ratio, antialias):
  key = tf.random.experimental.stateless_fold_in(
      tf.constant(base_key, tf.int64), e['pos'])
  crop_key, flip_key = tf.unstack(
      tf.random.experimental.stateless_split(key, 2))
  image_bytes = _read(e['data'], is_path)
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
  image = resize_bilinear(crop, [crop_size, crop_size], antialias)
  if image_size != crop_size:
    # Multi-size training: the same crop, at the smaller size.
    image = resize_bilinear(image, [image_size, image_size], antialias)
  image = _round_to_uint8(image)
  # tf.image.stateless_random_flip_left_right's draw, flipping uint8 pixels.
  flip = tf.random.stateless_uniform([], seed=flip_key) < 0.5
  image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
  return {'pos': e['pos'], 'image': image, 'label': e['label']}


def resize_short_side(image, short_side, antialias: bool = False):
  """Resizes an HWC image so that its short side is `short_side` and the long
  side keeps the aspect ratio (rounded); returns float32."""
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  short = tf.minimum(h, w)
  new_h = tf.where(h == short, short_side, (h * short_side + short // 2) // short)
  new_w = tf.where(w == short, short_side, (w * short_side + short // 2) // short)
  return resize_bilinear(image, tf.stack([new_h, new_w]), antialias)


def centre_crop(image, size: int):
  """The size x size centre of an HWC image at least that large."""
  shape = tf.shape(image)
  top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
  image = image[top:top + size, left:left + size]
  image.set_shape([size, size, 3])
  return image


def decode_image_file(path: str) -> np.ndarray:
  """A JPEG/PNG/GIF/BMP file (whatever its name says) as uint8 RGB HWC; raises
  tf.errors.InvalidArgumentError for a file that is not a readable image."""
  return _decode_full(tf.io.read_file(path)).numpy()


def _decode_eval(e, *, is_path, size, resize, antialias):
  def decode():
    image = decode_record(e['data'], is_path)
    return _round_to_uint8(
        centre_crop(resize_short_side(image, resize, antialias), size))

  if 'sentinel' in e:
    image = tf.cond(e['sentinel'], lambda: tf.zeros([size, size, 3], tf.uint8),
                    decode)
  else:
    image = decode()
  out = {'pos': e['pos'], 'image': image, 'label': e['label']}
  if 'sentinel' in e:
    out['sentinel'] = e['sentinel']
  return out


# -----------------------------------------------------------------------------
# Image folders (and the embedded set).
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FolderSplit:
  directory: str  # e.g. data_dir/train
  class_names: tuple[str, ...]
  rel_paths: np.ndarray  # bytes, '<class>/<file>', sorted
  labels: np.ndarray  # int32


def _folder_root(config) -> str:
  if config.dataset == 'embedded':
    return embedded_data.ensure_embedded_dataset(config.data_dir or None)
  if not config.data_dir:
    raise ValueError(
        "config.dataset='imagefolder' needs a data directory: pass "
        '--config.data_dir=/path/to/images holding train/<class>/* and '
        'val/<class>/* (or use --config.dataset=embedded).')
  return os.path.abspath(os.path.expanduser(config.data_dir))


def _split_dir(root, preferred, fallback, what):
  for name in (preferred, fallback):
    if name and os.path.isdir(os.path.join(root, name)):
      return os.path.join(root, name)
  if not os.path.isdir(root):
    raise ValueError(
        f'Data directory {root} does not exist: point --config.data_dir at a '
        'folder holding train/<class>/* and val/<class>/* images (or use '
        '--config.dataset=embedded).')
  names = ' or '.join(repr(n) for n in dict.fromkeys((preferred, fallback)))
  raise ValueError(
      f'No {what} folder ({names}) in {root}: it needs train/<class>/* and '
      'val/<class>/* images; point --config.data_dir at such a folder.')


def _folder_split(config, which: str) -> _FolderSplit:
  root = _folder_root(config)
  train_dir = _split_dir(root, config.get('train_split', 'train'), 'train',
                         'training')
  class_names = _list_classes(train_dir)
  if which == 'train':
    return _list_folder(train_dir, class_names)
  eval_dir = _split_dir(root, config.get('eval_split', 'val'), 'val',
                        'evaluation')
  return _list_folder(eval_dir, class_names)


@functools.lru_cache(maxsize=8)
def _list_classes(train_dir: str) -> tuple[str, ...]:
  names = sorted(entry.name for entry in os.scandir(train_dir)
                 if entry.is_dir() and not entry.name.startswith('.'))
  if not names:
    raise ValueError(
        f'{train_dir} has no class sub-folders: put the images in '
        f'{train_dir}/<class>/*.')
  return tuple(names)


@functools.lru_cache(maxsize=8)
def _list_folder(directory: str, class_names: tuple[str, ...]) -> _FolderSplit:
  class_ids = {name: i for i, name in enumerate(class_names)}
  paths, labels = [], []
  for entry in sorted(os.scandir(directory), key=lambda e: e.name):
    if not entry.is_dir() or entry.name.startswith('.'):
      continue
    if entry.name not in class_ids:
      raise ValueError(
          f'Class folder {entry.path} has no counterpart in the training '
          'folder; every evaluation class must also be a training class.')
    files = sorted(
        f.name for f in os.scandir(entry.path)
        if f.is_file() and not f.name.startswith('.')
        and f.name.lower().endswith(IMAGE_EXTENSIONS))
    paths.extend(f'{entry.name}/{f}' for f in files)
    labels.extend([class_ids[entry.name]] * len(files))
  if not paths:
    raise ValueError(
        f'No images ({", ".join(IMAGE_EXTENSIONS)}) under {directory}/<class>/: '
        'point --config.data_dir at a folder with train/<class>/* and '
        'val/<class>/* images.')
  logging.info('Found %d images of %d classes in %s.', len(paths),
               len(set(labels)), directory)
  return _FolderSplit(directory=directory, class_names=class_names,
                      rel_paths=np.array([p.encode() for p in paths]),
                      labels=np.array(labels, np.int32))


def _folder_train_order(n, *, seed, epoch, process_index, process_count,
                        length) -> np.ndarray:
  """Indices of the files this process reads in the epoch, `length` of them.

  The epoch's permutation of all n files (the same on every process) is cut
  into even parts, one per process; the part is followed by fresh permutations
  of itself as often as needed to reach `length`.
  """
  perm = np.random.default_rng(
      [int(seed) & 0xFFFFFFFF, int(epoch), 0x5199]).permutation(n)
  lo, hi = _even_slice(n, process_index, process_count)
  shard = perm[lo:hi]
  if not len(shard):
    raise ValueError(f'Process {process_index} of {process_count} gets no '
                     f'training images: the split has only {n}.')
  parts, have, repeat = [shard], len(shard), 1
  while have < length:
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch),
                                 int(process_index), repeat, 0x5199])
    parts.append(rng.permutation(shard))
    have += len(shard)
    repeat += 1
  return np.concatenate(parts)[:length]


def _folder_source(split: _FolderSplit, order: np.ndarray, start: int,
                   sentinel: bool = False):
  """Dataset of {'pos', 'data' (file path), 'label'} from position `start`."""
  order = np.asarray(order, np.int64)
  positions = np.arange(len(order), dtype=np.int64)
  prefix = split.directory.rstrip('/') + '/'
  elements = {
      'pos': positions[start:],
      'data': np.char.add(prefix.encode(), split.rel_paths[order[start:]]),
      'label': split.labels[order[start:]],
  }
  if sentinel:
    elements = {
        'pos': np.append(elements['pos'], len(order)),
        'data': np.append(elements['data'], b''),
        'label': np.append(elements['label'], 0).astype(np.int32),
        'sentinel': np.append(np.zeros(len(order) - start, bool), True),
    }
  ds = tf.data.Dataset.from_tensor_slices(elements)

  def describe(pos):
    if 0 <= pos < len(order):
      return os.path.join(split.directory,
                          split.rel_paths[order[pos]].decode())
    return f'position {pos}'

  return ds, describe


# -----------------------------------------------------------------------------
# TFDS.
# -----------------------------------------------------------------------------


def _tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def _prepare_hint(name, data_dir, manual_dir) -> str:
  if name.split(':')[0].split('/')[0] == 'imagenet2012':
    return (f'put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in '
            f'{manual_dir} and run: tfds build imagenet2012 '
            f'--data_dir={data_dir} --manual_dir={manual_dir} (or point '
            '--config.data_dir at a prepared TFDS folder).')
  return (f'run: tfds build {name} --data_dir={data_dir} (on a machine that '
          'may download it), or point --config.data_dir at a prepared TFDS '
          'folder.')


@functools.lru_cache(maxsize=8)
def _tfds_builder_cached(name, data_dir, manual_dir):
  tfds = _tfds()
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(
        f'Unknown data set {name!r}: use --config.dataset=embedded, '
        'imagefolder, or a TFDS name such as imagenet2012.') from None
  except ImportError as e:
    raise ValueError(
        f'TFDS builder {name!r} needs a missing package ({e}): pip install '
        '-r requirements.txt.') from None
  if not builder.is_prepared():
    actual_dir = data_dir or os.environ.get('TFDS_DATA_DIR') or (
        '~/tensorflow_datasets')
    manual = manual_dir or os.path.join(actual_dir, 'downloads', 'manual')
    raise ValueError(
        f'TFDS data set {name!r} is not prepared in {actual_dir}: '
        + _prepare_hint(name, actual_dir, manual))
  return builder


def _tfds_builder(config):
  return _tfds_builder_cached(config.dataset, config.data_dir or '',
                              config.get('manual_dir', '') or '')


def _tfds_num_examples(builder, split: str) -> int:
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError) as e:
    raise ValueError(
        f'TFDS data set {builder.name!r} has no split {split!r} '
        f'({", ".join(builder.info.splits.keys())} exist): set '
        '--config.train_split / --config.eval_split.') from e


def _tfds_shard(builder, split: str, process_index: int, process_count: int):
  """(sub-split, number of examples) of this process."""
  n = _tfds_num_examples(builder, split)
  lo, hi = _even_slice(n, process_index, process_count)
  if '[' in split or '+' in split:
    tfds = _tfds()
    sub = tfds.even_splits(split, n=process_count)[process_index]
    return sub, hi - lo
  return f'{split}[{lo}:{hi}]', hi - lo


def _tfds_records(builder, split, *, shuffle_seed: int | None):
  tfds = _tfds()
  read_config = tfds.ReadConfig(
      shuffle_seed=shuffle_seed,
      skip_prefetch=True,
      try_autocache=False)
  ds = builder.as_dataset(
      split=split,
      shuffle_files=shuffle_seed is not None,
      decoders={_TFDS_IMAGE_KEY: tfds.decode.SkipDecoding()},
      read_config=read_config)
  return ds.map(_nc(lambda e: {
      'data': e[_TFDS_IMAGE_KEY],
      'label': tf.cast(e[_TFDS_LABEL_KEY], tf.int32)}))


def _tfds_describe(name, split):
  return lambda pos: f'{name} {split} example #{pos}'


def _tfds_train_source(config, *, epoch, process_index, process_count, start,
                       end):
  builder = _tfds_builder(config)
  split, n = _tfds_shard(builder, config.train_split, process_index,
                         process_count)
  if n == 0:
    raise ValueError(f'Process {process_index} of {process_count} gets no '
                     f'training examples from {config.train_split!r}.')
  key = _base_key(config.seed, epoch, process_index)
  ds = _tfds_records(builder, split, shuffle_seed=int(key[0]) & 0x7FFFFFFF)
  ds = ds.shuffle(min(int(config.shuffle_buffer_size), n),
                  seed=int(key[1]) & 0x7FFFFFFF, reshuffle_each_iteration=True)
  ds = ds.repeat().take(end).enumerate().skip(start)
  ds = ds.map(_nc(lambda pos, e: {'pos': pos, **e}))
  return ds, _tfds_describe(config.dataset, split)


def _tfds_eval_source(config, *, process_index, process_count):
  builder = _tfds_builder(config)
  split, n = _tfds_shard(builder, config.eval_split, process_index,
                         process_count)
  ds = _tfds_records(builder, split, shuffle_seed=None)
  sentinel = tf.data.Dataset.from_tensors({
      'data': tf.constant(b''), 'label': tf.constant(0, tf.int32)})
  ds = ds.map(_nc(lambda e: {**e, 'sentinel': tf.constant(False)}))
  ds = ds.concatenate(
      sentinel.map(_nc(lambda e: {**e, 'sentinel': tf.constant(True)})))
  ds = ds.enumerate().map(_nc(lambda pos, e: {'pos': pos, **e}))
  del n
  return ds, _tfds_describe(config.dataset, split)
