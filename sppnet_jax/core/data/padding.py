"""Padding a short batch to a fixed size with a mask, so that every batch of an
evaluation has one shape (one compilation) and no example is dropped: the
padding rows are zeros and their mask is False, and metrics count masked-in
rows only."""

import tensorflow as tf


def pad_batch(batch, *, size):
  """A batch of up to `size` examples padded to `size` with zeros and given a
  'mask' (False on the padding); `size` may be a Python int or a tensor. The
  example count is read from the batch's 'label' entry if it has one, else from
  its first entry."""
  first = batch['label'] if 'label' in batch else next(iter(batch.values()))
  n = tf.shape(first, out_type=tf.int64)[0]
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
