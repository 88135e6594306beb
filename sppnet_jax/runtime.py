"""Process start-up shared by every entry point: XLA flags, jax.distributed,
the compilation cache, and quieter library logs.

Nothing here runs on import: `main.py` (and the benchmarks) call what they need
before the first JAX computation, in the order `prefer_fast_cpu_convolutions`
(it must precede JAX's backend start), then `start_jax`.
"""

import logging
import os

# The XLA flag that sends convolutions on the CPU to Eigen's multi-threaded
# convolutions instead of YNNPACK (jaxlib 0.10's default for convolutions and
# dots), keeping YNNPACK for the matrix products and the reductions: on a
# 2-core AMD EPYC it makes every ZF-5 convolution pass, forward and both
# gradients, 1.2-2x faster (see benchmarks/train_step.py), and YNNPACK's
# reductions keep region pooling's coarse pyramid levels (maxima over the
# finest level's bins) 3x faster than XLA's own (benchmarks/region_pooling.py).
# It must be in XLA_FLAGS before JAX starts.
CPU_CONV_XLA_FLAG = ('--xla_cpu_experimental_ynn_fusion_type='
                     'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,'
                     'LIBRARY_FUSION_TYPE_REDUCE')


def prefer_fast_cpu_convolutions() -> None:
  """Adds CPU_CONV_XLA_FLAG to XLA_FLAGS unless XLA_FLAGS already chooses; call
  it before JAX starts (it does nothing on GPU/TPU). main.py and the benchmarks
  call it, so every entry point runs the same convolutions."""
  flags_now = os.environ.get('XLA_FLAGS', '')
  if CPU_CONV_XLA_FLAG.split('=')[0] not in flags_now:
    os.environ['XLA_FLAGS'] = f'{flags_now} {CPU_CONV_XLA_FLAG}'.strip()


def cpu_convolutions_use_eigen() -> bool:
  """Whether XLA_FLAGS keeps convolutions off YNNPACK (see CPU_CONV_XLA_FLAG);
  `layers.conv2d('auto')` then takes XLA's convolutions for every pass."""
  values = [flag.split('=', 1)[1] for flag in os.environ.get('XLA_FLAGS', '').split()
            if flag.startswith('--xla_cpu_experimental_ynn_fusion_type=')]
  return bool(values) and 'CONVOLUTION' not in values[-1].upper()


def is_multiprocess_cluster() -> bool:
  """SLURM with several tasks, or a TPU VM that is one of several workers: JAX
  finds the coordinator, process count and id itself there."""
  if int(os.environ.get('SLURM_NTASKS', '1')) > 1:
    return True
  return ',' in os.environ.get('TPU_WORKER_HOSTNAMES', '')


def start_jax(*, coordinator_address: str | None = None,
              num_processes: int | None = None, process_id: int | None = None,
              cache_dir: str | None = None) -> None:
  """Joins the other processes (when asked to, or on a detected cluster), lets
  only process 0 log INFO lines, and points the persistent compilation cache at
  `cache_dir` (unless $JAX_COMPILATION_CACHE_DIR names one), so that a restart
  reuses the compiled steps."""
  import jax  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  if num_processes or coordinator_address or process_id is not None:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  elif is_multiprocess_cluster():
    jax.distributed.initialize()
  if jax.process_index() > 0:  # Process 0 reports for all.
    absl_logging.set_verbosity(absl_logging.WARNING)
  absl_logging.info('JAX on %d %s devices in %d processes.', jax.device_count(),
                    jax.devices()[0].platform, jax.process_count())
  if cache_dir and not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    jax.config.update('jax_compilation_cache_dir', cache_dir)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


# Library lines a run does not need at the default verbosity: (logger name or
# source path fragment, message start). INFO lines of Orbax (per-save reports)
# and of JAX (backend probing, such as the libtpu failure on every CPU host) go
# too; warnings and errors of all libraries stay.
_QUIET_LINES = (
    ('/orbax/', 'CheckpointManagerOptions.read_only=True'),  # Every restore.
    ('/orbax/', 'Given directory is read only'),
    ('clu/platform/', 'Created artifact'),  # The profile's URL: None off Borg.
)


class _QuietLibraries(logging.Filter):
  """Keeps library chatter out of the console (see _QUIET_LINES), so that a
  run prints what it does and its results."""

  def filter(self, record) -> bool:
    path = record.pathname.replace(os.sep, '/')
    if record.levelno < logging.WARNING and (
        '/orbax/' in path or record.name.split('.')[0] == 'jax'):
      return False
    return not any(where in path and record.getMessage().startswith(start)
                   for where, start in _QUIET_LINES)


def quiet_library_logs() -> None:
  """Installs the filter on absl's handler, and keeps TensorFlow's C++ start-up
  notices (oneDNN, CPU features) off stderr: it must run before TensorFlow is
  imported. TensorFlow only runs the input pipeline here, whose ops oneDNN
  does not change; $TF_ENABLE_ONEDNN_OPTS and $TF_CPP_MIN_LOG_LEVEL, when set,
  are kept."""
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.get_absl_handler().addFilter(_QuietLibraries())


def keep_tensorflow_off_accelerators() -> None:
  """tf.data only: the accelerators are JAX's. Where TensorFlow has already
  started on its devices (a notebook that used it before loading a model),
  they stay as they are."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # "Visible devices cannot be modified after ..."
    pass
