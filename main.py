"""Trains and evaluates ZFNet / SPP-net.

  python main.py --config=configs/sppnet_mult.py --workdir=DIR   # train (resumes)
  python main.py --config=configs/sppnet_mult.py --workdir=DIR --mode=eval
  python main.py --workdir=DIR   # the embedded default (configs/tiny.py) on a CPU

Any config field can be overridden: --config.batch_size=64.
"""

import difflib
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)

FLAGS = flags.FLAGS


def _exit_unknown_config_field(error: Exception) -> None:
  """An unknown --config field as a one-line error with a suggestion."""
  from configs import default  # pylint: disable=g-import-not-at-top
  known = list(default.get_config().keys())
  names = [a.split('=')[0][len('--config.'):] for a in sys.argv[1:]
           if a.startswith('--config.')]
  unknown = next((n for n in names if n.split('.')[0] not in known),
                 re.sub(r"[\"']", '', str(error).splitlines()[0]))
  close = difflib.get_close_matches(unknown.split('.')[0], known, n=1)
  hint = f'did you mean --config.{close[0]}? ' if close else ''
  print(f'error: unknown config field --config.{unknown}: {hint}the fields are '
        'listed in configs/default.py.', file=sys.stderr)
  sys.exit(2)


try:  # The recipe is loaded, and --config.* overrides applied, right here.
  config_flags.DEFINE_config_file(
      'config', os.path.join(_HERE, 'configs', 'tiny.py'),
      'Recipe file (configs/*.py); fields can be overridden with --config.NAME=VALUE.',
      lock_config=True)
except (AttributeError, KeyError) as error:
  _exit_unknown_config_field(error)

flags.DEFINE_string('workdir', None, 'Directory for checkpoints and TensorBoard logs.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'export', 'predict'],
                  'train: train (resuming from the workdir); eval: score the best '
                  'checkpoint of the workdir (or --config.eval.checkpoint_step / '
                  '_path) on the validation split; metrics also go to WORKDIR/eval/; '
                  'export: write that checkpoint as jax.export artefacts to '
                  'WORKDIR/export/; predict: top-5 classes of --images.')
flags.DEFINE_list('images', [], 'With --mode=predict: image files or folders.')
flags.DEFINE_bool('json', False, 'With --mode=predict: print JSON lines.')
flags.DEFINE_bool('from_export', False, 'With --mode=predict: use the artefacts in '
                  'WORKDIR/export/ instead of the checkpoint.')
flags.DEFINE_string('coordinator_address', None, 'Multi-process runs: host:port of '
                    'process 0 (as jax.distributed.initialize); auto-detected on TPU '
                    'VMs and SLURM.')
flags.DEFINE_integer('num_processes', None, 'Multi-process runs: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-process runs: this process, 0-based.')
flags.mark_flags_as_required(['workdir'])

# Errors a user can act on: printed as one line, without a traceback.
_USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def _is_multiprocess_cluster() -> bool:
  """SLURM with several tasks, or a TPU VM that is one of several workers: JAX
  finds the coordinator, process count and id itself there."""
  if int(os.environ.get('SLURM_NTASKS', '1')) > 1:
    return True
  return ',' in os.environ.get('TPU_WORKER_HOSTNAMES', '')


def _start_jax(workdir: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.num_processes or FLAGS.coordinator_address or FLAGS.process_id is not None:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes,
                               process_id=FLAGS.process_id)
  elif _is_multiprocess_cluster():
    jax.distributed.initialize()
  if jax.process_index() > 0:  # Process 0 reports for all.
    logging.set_verbosity(logging.WARNING)
  logging.info('JAX on %d %s devices in %d processes.', jax.device_count(),
               jax.devices()[0].platform, jax.process_count())
  # Restarts reuse compiled steps instead of compiling again (in the workdir,
  # unless $JAX_COMPILATION_CACHE_DIR names a shared cache).
  if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    jax.config.update('jax_compilation_cache_dir', os.path.join(workdir, 'jax_cache'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


class _QuietLibraries:
  """Keeps the libraries' routine INFO lines (Orbax's per-save reports) out of
  the console, so that the progress and metric lines stay readable."""

  def filter(self, record) -> bool:
    return record.levelno >= 30 or '/orbax/' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  # Eigen CPU convolutions (1.2-2x faster for ZF-5 than XLA's default library).
  from sppnet_jax import models  # pylint: disable=g-import-not-at-top
  models.prefer_fast_cpu_convolutions()
  logging.get_absl_handler().addFilter(_QuietLibraries())
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')  # tf.data only: the devices are JAX's.
  from sppnet_jax import train  # pylint: disable=g-import-not-at-top

  workdir = os.path.abspath(FLAGS.workdir)
  os.makedirs(workdir, exist_ok=True)
  _start_jax(workdir)
  try:
    if FLAGS.mode == 'train':
      _print_metrics('final', train.train_and_evaluate(FLAGS.config, workdir))
    elif FLAGS.mode == 'eval':
      metrics = train.evaluate_checkpoint(FLAGS.config, workdir)
      protocol = metrics['protocol']
      _print_metrics(f'checkpoint step {metrics["step"]}'
                     + ('' if protocol == 'center' else f' ({protocol})'), metrics)
    elif FLAGS.mode == 'export':
      _export(FLAGS.config, workdir)
    else:
      sys.exit(_predict(FLAGS.config, workdir))
  except train.Preempted as stopped:
    print(stopped, file=sys.stderr, flush=True)
    sys.exit(143)  # 128 + SIGTERM, as if the signal had ended the process.
  except _USER_ERRORS as error:
    logging.debug('Stopped by a user error.', exc_info=True)
    print(f'error: {error}', file=sys.stderr)
    sys.exit(2)


def _print_metrics(label: str, metrics: dict) -> None:
  print(f'{label} validation: top-1 {100 * metrics["top1"]:.2f}%, top-5 '
        f'{100 * metrics["top5"]:.2f}%, loss {metrics["loss"]:.4f} on '
        f'{metrics["num_examples"]} examples', flush=True)


def _export(config, workdir: str) -> None:
  from sppnet_jax import export, train  # pylint: disable=g-import-not-at-top
  model, params, metadata, step = train.restore_for_inference(config, workdir)
  path = export.export_model(model, params, export.export_sizes(config),
                             os.path.join(workdir, 'export'),
                             class_names=metadata['class_names'], config=config)
  print(f'exported checkpoint step {step} to {os.path.dirname(path)}', flush=True)


def _predict(config, workdir: str) -> int:
  """Prints the top-5 of every image; 1 if any could not be read, else 0."""
  import json  # pylint: disable=g-import-not-at-top
  from sppnet_jax import predict  # pylint: disable=g-import-not-at-top
  paths = predict.expand_paths(FLAGS.images)
  if not paths:
    raise ValueError('no images to predict: pass --images=a.jpg,b.png or a folder.')
  if FLAGS.from_export:
    predictor = predict.predictor_from_export(config, os.path.join(workdir, 'export'))
  else:
    predictor = predict.predictor_from_checkpoint(config, workdir)
  results = predict.predict_files(paths, prepare=predictor[0], run=predictor[1],
                                  class_names=predictor[2])
  for result in results:
    if FLAGS.json:
      print(json.dumps(result))
    elif 'error' in result:
      print(f'{result["file"]}: error: {result["error"]}')
    else:
      print(f'{result["file"]}: ' + ', '.join(
          f'{name} {p:.3f}' for name, p in result['predictions']))
  return int(any('error' in result for result in results))


if __name__ == '__main__':
  app.run(main)
