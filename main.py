"""SPP-net and ZFNet (He et al., 2014) in JAX: classification and detection.

usage: python main.py --workdir=DIR [--config=RECIPE] [--mode=MODE]
                      [--config.FIELD=VALUE ...] [IMAGE_FILE_OR_FOLDER ...]

--mode (default train):
  train      train in DIR (a second run resumes); detection: every stage, then
             the test split's score
  eval       score DIR's best checkpoint (validation split; detection: test)
  predict    classification: the top-5 classes of image files and folders
  detect     detection: boxes in image files and folders (JSON lines on
             stdout, drawings in DIR/detect/)
  export     the checkpoint (detection: the detector) as jax.export in DIR/export/
  proposals  detection: only the region proposals of the train and eval splits
  transfer   SVMs on a backbone's features: configs/transfer/*.py (README)

--config (default configs/tiny.py; configs/NAME.py: configs/classification/):
  configs/tiny.py             SPP-net on a generated 10-class set, CPU minutes
  configs/sppnet_mult.py      SPP-net on ImageNet at 224 and 180 pixels (paper)
  configs/sppnet_single.py    the same at 224 only; configs/zfnet.py: ZFNet
  configs/classification/overfeat7_spp_mult.py: the paper's best (README: all 4)
  configs/detection/tiny.py   detection on a generated 8-class set, CPU minutes
  configs/detection/voc07.py  detection on PASCAL VOC 2007 (paper)

Most used fields (all, with their meaning: sppnet_jax/classification/config.py
and sppnet_jax/detection/config.py):
  --config.batch_size=256 --config.learning_rate=0.01 --config.num_epochs=160
  --config.data_dir=DIR --config.eval.protocol=ten_view --config.dtype=bfloat16
  --config.detection.backbone=WORKDIR --config.detection.scales='(688,)'

Examples:
  python main.py --workdir=runs/tiny       # train the default, then evaluate
  python main.py --workdir=runs/tiny --mode=predict photos/ a.jpg
  python main.py --config=configs/detection/tiny.py --workdir=runs/det
  python main.py --config=configs/detection/tiny.py --workdir=runs/det \\
      --mode=detect a.jpg

A mistake on the command line is one line `error: ...` and exit status 2.
--helpfull lists every flag (--images, --json, --from_export, multi-process).
"""

# Kept short: flags, start-up, hand-off to the recipe's task (the docstring
# above is --help).

import os
import runpy
import sys

from absl import app, flags
from ml_collections import config_flags

from sppnet_jax import cli, errors, runtime

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_RECIPE = os.path.join(_HERE, 'configs', 'classification', 'tiny.py')
_FIELDS_DOC = {'classification': 'sppnet_jax/classification/config.py',
               'detection': 'sppnet_jax/detection/config.py',
               'transfer': 'sppnet_jax/transfer/config.py'}
FLAGS = flags.FLAGS


def _recipe_path() -> str:
  """The (last, as absl takes it) --config=... of the command line, or the
  default recipe."""
  return next((arg.split('=', 1)[1] for arg in reversed(sys.argv[1:])
               if arg.startswith('--config=')), _DEFAULT_RECIPE)


def _recipe_fields():
  """The fields of the recipe named by --config (the default recipe's if that
  one cannot be loaded), to name an unknown override's close match."""
  try:
    return runpy.run_path(_recipe_path().split(':')[0])['get_config']()
  except Exception:  # pylint: disable=broad-except
    return runpy.run_path(_DEFAULT_RECIPE)['get_config']()


def _exit_user_error(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def _exit_unknown_field(error: Exception) -> None:
  fields = _recipe_fields()
  message = cli.unknown_config_field(
      fields, sys.argv[1:], _FIELDS_DOC[fields.get('task', 'classification')])
  _exit_user_error(message or str(error).splitlines()[0])


def _exit_if_no_recipe() -> None:
  """ml_collections keeps a recipe's load failure (no such file, a folder,
  unreadable) until the config is first used: one line for it here."""
  try:
    FLAGS['config'].value.get('task')
  except OSError as error:
    _exit_user_error(cli.recipe_error(FLAGS['config'].config_filename, error))


def _parse_flags(argv):
  """absl's parsing, with every mistake on the command line (an unknown flag
  or --config field, a value of the wrong type, an unknown mode, a recipe that
  cannot be loaded, no --workdir) as one line and exit status 2, before JAX or
  TensorFlow start; --help prints the docstring (exit 0)."""
  wanted = cli.help_wanted(argv[1:])
  if wanted:
    if wanted == 'full':
      app.usage(shorthelp=False, writeto_stdout=True, exitcode=0)
    try:
      print(__doc__.strip(), flush=True)
    except BrokenPipeError:  # `main.py --help | head`
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)
  try:
    arguments = FLAGS(argv)
  except (AttributeError, KeyError) as error:
    _exit_unknown_field(error)
  except flags.Error as error:
    _exit_user_error(cli.flag_error(error, _recipe_fields()))
  except OSError as error:  # A recipe that failed to load, met by an override.
    _exit_user_error(cli.recipe_error(_recipe_path(), error))
  _exit_if_no_recipe()
  if any(arg.startswith('--config.') for arg in argv[1:]):
    message = cli.override_type_error(_recipe_fields(), FLAGS.config, argv[1:])
    if message:
      _exit_user_error(message)
  if not FLAGS.workdir:
    _exit_user_error('--workdir is required: the folder of the run\'s '
                     'checkpoints and logs, e.g. --workdir=runs/tiny.')
  if arguments[1:] and FLAGS.mode not in ('predict', 'detect'):
    _exit_user_error(f'unexpected arguments: {" ".join(arguments[1:])} (only '
                     '--mode=predict and detect take image files as '
                     'arguments)')
  return arguments


try:  # The recipe is loaded, and top-level --config.* names checked, here.
  config_flags.DEFINE_config_file(
      'config', _DEFAULT_RECIPE,
      'Recipe file: configs/classification/*.py (configs/NAME.py for short), '
      'configs/detection/*.py or configs/transfer/*.py; fields can be '
      'overridden with '
      '--config.NAME=VALUE.', lock_config=True)
except (AttributeError, KeyError) as error:
  _exit_unknown_field(error)

flags.DEFINE_string('workdir', None, 'Directory for checkpoints and TensorBoard logs '
                    '(required).')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'export', 'predict',
                                    'proposals', 'detect', 'transfer'],
                  'train: train (resuming from the workdir); eval: score the best '
                  'checkpoint of the workdir (or --config.eval.checkpoint_step / '
                  '_path) on the validation split; metrics also go to WORKDIR/eval/; '
                  'export: write that checkpoint (detection recipes: the whole '
                  'detector, per config.export.image_sizes) as jax.export '
                  'artefacts to WORKDIR/export/; predict: top-5 classes of the image files and '
                  'folders given as arguments (or --images); proposals '
                  '(detection recipes): compute the region proposals of the '
                  'train and eval splits; detect (detection recipes): boxes in '
                  'the image files and folders given as arguments (JSON lines, '
                  'and PNGs drawn in WORKDIR/detect/). With a detection recipe, '
                  'train runs every stage (each resuming) and eval scores the '
                  'test split. transfer (transfer recipes): SVMs on the '
                  'backbone\'s features, scored on the test split.')
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


def main(argv):
  arguments = argv[1:]  # Checked in _parse_flags.
  runtime.prefer_fast_cpu_convolutions()  # Before JAX starts.
  runtime.quiet_library_logs()
  distributed = dict(coordinator_address=FLAGS.coordinator_address,
                     num_processes=FLAGS.num_processes,
                     process_id=FLAGS.process_id)
  try:
    task = FLAGS.config.get('task')
    if (task == 'transfer') != (FLAGS.mode == 'transfer'):
      raise errors.ConfigError(
          'a transfer recipe (configs/transfer/*.py) runs with '
          '--mode=transfer, and only it does.')
    if task == 'transfer':
      from sppnet_jax.transfer import main as transfer  # pylint: disable=g-import-not-at-top
      runtime.start_jax()
      transfer.run(FLAGS.config, FLAGS.workdir)
      sys.exit(0)
    if task == 'detection':
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
    _exit_user_error(str(error))


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
