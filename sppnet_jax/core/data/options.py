"""tf.data settings shared by every pipeline of the project."""

import os

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Our dataset functions use tf.cond explicitly: skip AutoGraph (faster tracing).
no_autograph = tf.autograph.experimental.do_not_convert


def dataset_options(config) -> tf.data.Options:
  """Threads (`config.data_threads`, 0: one per core), autotuning, and
  determinism (`config.deterministic`: exact resume needs it)."""
  options = tf.data.Options()
  threads = int(config.get('data_threads', 0)) or os.cpu_count() or 1
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = True
  options.deterministic = bool(config.deterministic)
  options.experimental_optimization.map_parallelization = True
  return options
