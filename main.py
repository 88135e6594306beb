"""Trains and evaluates ZFNet / SPP-net, for classification or detection (kept
short: flags, start-up, hand-off to the recipe's task).

  python main.py --config=configs/sppnet_mult.py --workdir=DIR   # train (resumes)
  python main.py --config=configs/sppnet_mult.py --workdir=DIR --mode=eval
  python main.py --workdir=DIR   # the embedded default (configs/tiny.py) on a CPU
  python main.py --workdir=DIR --mode=predict photos/*.jpg
  python main.py --config=configs/detection/tiny.py --workdir=DIR   # detection
  python main.py --config=configs/detection/tiny.py --workdir=DIR --mode=detect a.jpg

Any config field can be overridden: --config.batch_size=64. Mistakes a user can
fix (sppnet_jax.errors.UserError) end in one line and exit status 2; anything
else keeps its traceback.
"""

import os
import runpy
import sys

from absl import app, flags
from ml_collections import config_flags

from sppnet_jax import cli, errors, runtime

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_RECIPE = os.path.join(_HERE, 'configs', 'classification', 'tiny.py')
_FIELDS_DOC = {'classification': 'sppnet_jax/classification/config.py',
               'detection': 'sppnet_jax/detection/config.py'}
FLAGS = flags.FLAGS


def _recipe_fields():
  """The fields of the recipe named by --config (the default recipe's if that
  one cannot be loaded), to name an unknown override's close match."""
  recipe = next((arg.split('=', 1)[1] for arg in sys.argv[1:]
                 if arg.startswith('--config=')), _DEFAULT_RECIPE)
  try:
    return runpy.run_path(recipe.split(':')[0])['get_config']()
  except Exception:  # pylint: disable=broad-except
    return runpy.run_path(_DEFAULT_RECIPE)['get_config']()


def _exit_unknown_field(error: Exception) -> None:
  fields = _recipe_fields()
  message = cli.unknown_config_field(
      fields, sys.argv[1:], _FIELDS_DOC[fields.get('task', 'classification')])
  print(f'error: {message or str(error).splitlines()[0]}', file=sys.stderr)
  sys.exit(2)


def _parse_flags(argv):
  """absl's parsing, with a misspelled nested --config field (found here, when
  the overrides are applied) as the same one-line error as a top-level one."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as error:
    _exit_unknown_field(error)


try:  # The recipe is loaded, and top-level --config.* names checked, here.
  config_flags.DEFINE_config_file(
      'config', _DEFAULT_RECIPE,
      'Recipe file (configs/classification/*.py); fields can be overridden with '
      '--config.NAME=VALUE.', lock_config=True)
except (AttributeError, KeyError) as error:
  _exit_unknown_field(error)

flags.DEFINE_string('workdir', None, 'Directory for checkpoints and TensorBoard logs.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'export', 'predict',
                                    'proposals', 'detect'],
                  'train: train (resuming from the workdir); eval: score the best '
                  'checkpoint of the workdir (or --config.eval.checkpoint_step / '
                  '_path) on the validation split; metrics also go to WORKDIR/eval/; '
                  'export: write that checkpoint as jax.export artefacts to '
                  'WORKDIR/export/; predict: top-5 classes of the image files and '
                  'folders given as arguments (or --images); proposals '
                  '(detection recipes): compute the region proposals of the '
                  'train and eval splits; detect (detection recipes): boxes in '
                  'the image files and folders given as arguments (JSON lines, '
                  'and PNGs drawn in WORKDIR/detect/). With a detection recipe, '
                  'train runs every stage (each resuming) and eval scores the '
                  'test split.')
flags.DEFINE_list('images', [], 'With --mode=predict or detect: image files or '
                  'folders, '
                  'comma-separated (plain arguments work too).')
flags.DEFINE_bool('json', False, 'With --mode=predict: print JSON lines.')
flags.DEFINE_bool('from_export', False, 'With --mode=predict: use the artefacts in '
                  'WORKDIR/export/ instead of the checkpoint.')
flags.DEFINE_string('coordinator_address', None, 'Multi-process runs: host:port of '
                    'process 0 (as jax.distributed.initialize); auto-detected on TPU '
                    'VMs and SLURM.')
flags.DEFINE_integer('num_processes', None, 'Multi-process runs: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-process runs: this process, 0-based.')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  arguments = argv[1:]
  if arguments and FLAGS.mode not in ('predict', 'detect'):
    raise app.UsageError(f'unexpected arguments: {" ".join(arguments)} (only '
                         '--mode=predict and detect take image files as '
                         'arguments)')
  runtime.prefer_fast_cpu_convolutions()  # Before JAX starts.
  runtime.quiet_library_logs()
  distributed = dict(coordinator_address=FLAGS.coordinator_address,
                     num_processes=FLAGS.num_processes,
                     process_id=FLAGS.process_id)
  try:
    if FLAGS.config.get('task') == 'detection':
      from sppnet_jax.detection import main as detection  # pylint: disable=g-import-not-at-top
      sys.exit(detection.run(FLAGS.mode, FLAGS.config, FLAGS.workdir,
                             images=list(FLAGS.images) + arguments,
                             distributed=distributed))
    from sppnet_jax.classification import main as classification  # pylint: disable=g-import-not-at-top
    sys.exit(classification.run(
        FLAGS.mode, FLAGS.config, FLAGS.workdir,
        images=list(FLAGS.images) + arguments, json_lines=FLAGS.json,
        from_export=FLAGS.from_export,
        distributed=distributed))
  except errors.UserError as error:
    print(f'error: {error}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
