"""Corrupt images (unreadable, truncated, not an image) never stop a run.

Records enter the decode stage with consecutive positions. An image that fails
to decode is dropped (`ignore_errors`), found by the gap it leaves in the
position sequence, logged with its name, and counted per kind ('train', 'eval',
...) in this process: see `num_skipped_images()`. The decode stage is always
ordered, because the accounting relies on that order. Then either

* `fill_gaps=True` (training): the gap is filled with copies of the next good
  example, so batch boundaries, the batch count and exact resume are unchanged;
* `fill_gaps=False` (evaluation): the image is not an example; the pipeline pads
  its shard with masked examples instead, so every readable image is scored
  exactly once and all processes still yield the same number of batches.

A sentinel record (one past the last position, not decoded) lets a gap at the
very end of a shard be seen too.
"""

import collections
import logging
import threading
from typing import Callable

import numpy as np
import tensorflow as tf

from sppnet_jax.core.data.options import AUTOTUNE, no_autograph

_skip_lock = threading.Lock()
_skipped = collections.Counter()


def num_skipped_images(kind: str | None = None) -> int:
  """How many unreadable images were skipped so far in this process.

  Args:
    kind: 'train', 'eval', or None for all kinds.
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


def error_dataset(element_spec, message: str) -> tf.data.Dataset:
  """One element that fails with `message` when it is produced."""

  def fail(_):
    check = tf.debugging.Assert(tf.constant(False), [message])
    with tf.control_dependencies([check]):
      return tf.nest.map_structure(
          lambda s: tf.zeros([d if d is not None else 1 for d in s.shape],
                             s.dtype), element_spec)

  return tf.data.Dataset.range(1).map(no_autograph(fail))


def decode_and_skip_corrupt(ds, decode, *, kind, start, describe, fill_gaps):
  """Decodes; drops, counts and logs unreadable images (see the module doc).

  `ds` yields {'pos': int64 position, 'data': bytes or path, 'label', and
  optionally 'sentinel'}; positions increase by one from `start`. A sentinel
  (one past the last position) is not decoded; it only lets us see a gap at the
  end, and is dropped here. Yields the decoded elements without 'pos'.
  """
  return decoded_batches(ds, decode, 1, kind=kind, start=start,
                         describe=describe, fill_gaps=fill_gaps).unbatch()


def decoded_batches(ds, decode, batch_size, *, kind, start, describe,
                    fill_gaps, end=None):
  """`decode_and_skip_corrupt`, batched: batches of `batch_size` readable
  images (with `fill_gaps`, larger where gaps were filled; without, the
  sentinel's batch is smaller). Looking for gaps once per batch instead of once
  per image saves most of the accounting's cost (~50 us per image on a 2-core
  EPYC, 3-5% of decoding an ImageNet JPEG).

  Gaps that start at or after `end` (in the look-ahead that fills a gap at the
  end of the epoch) are not counted, as no one uses the images after them.
  """
  ds = ds.map(no_autograph(decode), num_parallel_calls=AUTOTUNE,
              deterministic=True)
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

  return ds.scan(tf.constant(start - 1, tf.int64), no_autograph(account))
