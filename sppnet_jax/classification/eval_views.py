"""The paper's test views as tf.data batches: ten views, full images, several scales.

`config.eval.protocol` picks the views of each validation example:

* `center`: short side to `eval_resize`, the `eval_size` center crop (1 view);
* `ten_view`: the 4 corner crops and the center crop of the same image, and
  their mirror images (10 views);
* `full_image`: the whole image at its own aspect ratio, short side resized to
  `eval_resize`, each side rounded to a multiple of `eval.full_image_step` (the
  shape bucket) so that compilations stay as few as the buckets;
* `multi_scale`: the views `eval.scale_views` (one of the three above) at every
  short side of `eval.scales` (paper Table 5);
* `feature_map_views` (paper 3.1.5): the full image and its mirror at every
  short side of `eval.scales`; the network computes conv5 of each once and pools
  the `eval_size` windows of `feature_map_windows` from it (evaluate.py).

`eval.flip` adds the mirror image of center and full-image views. The network's
softmax is averaged over all views of an example (every view weighs the same).

One element per (example, scale) holds that scale's views [V, H, W, 3]; elements
of one shape are batched together (`group_by_window`), each batch padded to its
size with masked rows. Batches hold about as many pixels as `eval_batch_size`
center crops, so large scales get fewer examples per batch and memory stays
bounded; the examples-per-batch is a function of the shape, so it adds no
compilations. Batch order depends on the data, so each process evaluates its own
shard on its own devices and the sums are combined at the end
(`evaluate.evaluate_views`); this needs no agreement on shapes between processes.
"""

import dataclasses
import functools

import tensorflow as tf

from sppnet_jax.classification import input_pipeline
from sppnet_jax.core.data import corrupt, image_ops, padding
from sppnet_jax.core.data.options import dataset_options, no_autograph

_KEY_FACTOR = 1 << 20  # bucket key = height * _KEY_FACTOR + width
_nc = no_autograph


@dataclasses.dataclass(frozen=True)
class ViewSpec:
  """What `config.eval.protocol` means as views."""
  scales: tuple[int, ...]  # short sides
  kind: str  # one of config.VIEW_KINDS
  crop: int  # the crop side of center and ten-view views (eval_size)
  step: int  # full-image bucket step
  flip: bool  # also the mirror image of center / full-image views
  # feature_map_views: windows pooled from conv5 of each full image (and of its
  # mirror), the whole image among them or not, projected by this rule.
  feature_map: bool = False
  full_image_window: bool = False
  projection: str = 'paper'

  @property
  def views_per_scale(self) -> int:
    """Images per (example, scale) the network runs on."""
    if self.kind == 'ten_view':
      return 10
    return 2 if self.flip else 1


def view_spec(config) -> ViewSpec:
  protocol = config.eval.protocol
  if protocol == 'feature_map_views':
    return ViewSpec(scales=tuple(int(s) for s in config.eval.scales),
                    kind='full_image', crop=int(config.eval_size),
                    step=int(config.eval.full_image_step), flip=True,
                    feature_map=True,
                    full_image_window=bool(config.eval.feature_map_full_image),
                    projection=str(config.eval.projection))
  if protocol == 'multi_scale':
    scales, kind = tuple(int(s) for s in config.eval.scales), config.eval.scale_views
  else:
    scales, kind = (int(config.eval_resize),), protocol
  return ViewSpec(scales=scales, kind=kind, crop=int(config.eval_size),
                  step=int(config.eval.full_image_step),
                  flip=bool(config.eval.flip))


def feature_map_windows(height: int, width: int, crop: int,
                        full_image: bool = False) -> list[tuple[int, int, int, int]]:
  """The distinct (y0, x0, y1, x1) pixel windows of feature_map_views in a
  height x width image: crop x crop (at most the image) at the center, the 4
  corners and the 4 side middles, then the whole image if `full_image`. A
  side no longer than the crop leaves one position on it (at s = 224 a
  224 x W image has 3 distinct windows, 6 with the mirror image)."""
  ch, cw = min(crop, height), min(crop, width)
  rows = (0, (height - ch) // 2, height - ch)
  cols = (0, (width - cw) // 2, width - cw)
  windows = [(rows[1], cols[1])] + [(y, x) for y in (rows[0], rows[2])
                                     for x in (cols[0], cols[2])] + [
      (rows[0], cols[1]), (rows[2], cols[1]), (rows[1], cols[0]), (rows[1], cols[2])]
  boxes = [(y, x, y + ch, x + cw) for y, x in windows]
  if full_image:
    boxes.append((0, 0, height, width))
  return list(dict.fromkeys(boxes))


def _ten_crops(image, crop):
  """The 4 corner crops and the center crop of an HWC image, then their mirrors."""
  shape = tf.shape(image)
  bottom, right = shape[0] - crop, shape[1] - crop
  corners = [(0, 0), (0, right), (bottom, 0), (bottom, right),
             (bottom // 2, right // 2)]  # the center as `center_crop` takes it
  crops = tf.stack([image[y:y + crop, x:x + crop] for y, x in corners])
  return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def views_at_scale(image, short_side: int, spec: ViewSpec, antialias: bool):
  """uint8 [V, H, W, 3] views of a decoded uint8 HWC image at one short side."""
  if spec.kind == 'full_image':
    shape = image_ops.full_image_shape(tf.shape(image)[0], tf.shape(image)[1],
                                       short_side, spec.step)
    views = image_ops.resize_bilinear(image, tf.stack(shape), antialias)[None]
  else:
    resized = image_ops.resize_short_side(image, short_side, antialias)
    if spec.kind == 'ten_view':
      return image_ops.to_uint8(_ten_crops(resized, spec.crop))
    views = image_ops.center_crop(resized, spec.crop)[None]
  if spec.flip:
    views = tf.concat([views, tf.reverse(views, axis=[2])], axis=0)
  return image_ops.to_uint8(views)


def examples_per_batch(height, width, spec: ViewSpec, pixel_budget: int,
                       multiple: int):
  """Examples in a batch of views of this shape: about `pixel_budget` pixels,
  rounded down to a multiple of `multiple` (the local device count), at least
  `multiple`. Works on Python ints and on tensors alike."""
  pixels = spec.views_per_scale * height * width
  n = pixel_budget // pixels // multiple * multiple
  return tf.maximum(tf.cast(n, tf.int64), multiple)


def _decode_views(e, *, is_path, spec, antialias):
  """The views at every scale of one record (zeros for the end sentinel)."""

  def decode():
    image = image_ops.decode_record(e['data'], is_path)
    return tuple(views_at_scale(image, s, spec, antialias) for s in spec.scales)

  def sentinel():
    return tuple(tf.zeros([spec.views_per_scale, 1, 1, 3], tf.uint8)
                 for _ in spec.scales)

  views = tf.cond(e['sentinel'], sentinel, decode)
  # 'pos' is consumed by the corrupt-image accounting; 'index' is kept.
  out = {'pos': e['pos'], 'index': e['pos'], 'label': e['label'],
         'sentinel': e['sentinel']}
  out.update({f'views{k}': v for k, v in enumerate(views)})
  return out


def _per_scale(e, num_scales):
  """One element per scale: {'views', 'pos', 'label'}."""
  parts = [tf.data.Dataset.from_tensors(
      {'views': e[f'views{k}'], 'pos': e['index'], 'label': e['label']})
           for k in range(num_scales)]
  return functools.reduce(lambda a, b: a.concatenate(b), parts)


def views_dataset(config, *, local_batch_size: int, devices: int,
                  process_index: int = 0, process_count: int = 1,
                  source=None) -> tf.data.Dataset:
  """This process's shard of the eval split as batches of views.

  Returns:
    A dataset of {'views': uint8 [B, V, H, W, 3], 'pos': int64 [B] (the
    example's position in this process's shard; 0 for padding), 'label': int32
    [B], 'mask': bool [B]}; B and (H, W) vary between batches, B is a multiple
    of `devices`. Every readable example of the shard appears once per scale;
    unreadable ones are skipped and counted as in `input_pipeline.eval_dataset`.
  """
  spec = view_spec(config)
  source = source or input_pipeline.open_source(config)
  ds, describe = source.eval_records(process_index=process_index,
                                     process_count=process_count)
  decode = functools.partial(
      _decode_views, is_path=source.is_path, spec=spec,
      antialias=bool(config.get('resize_antialias', False)))
  ds = corrupt.decode_and_skip_corrupt(
      ds, decode, kind='eval', start=0, describe=describe, fill_gaps=False)
  ds = ds.flat_map(_nc(functools.partial(_per_scale, num_scales=len(spec.scales))))

  budget = local_batch_size * spec.crop * spec.crop

  def shape_key(e):
    shape = tf.shape(e['views'], out_type=tf.int64)
    return shape[1] * _KEY_FACTOR + shape[2]

  def batch_size(key):
    return examples_per_batch(key // _KEY_FACTOR, key % _KEY_FACTOR, spec,
                              budget, devices)

  def batch_and_pad(key, window):
    size = batch_size(key)
    return window.batch(size).map(
        _nc(functools.partial(padding.pad_batch, size=size)))

  ds = ds.group_by_window(_nc(shape_key), _nc(batch_and_pad),
                          window_size_func=_nc(batch_size))
  return ds.prefetch(tf.data.AUTOTUNE).with_options(
      dataset_options(config))

