"""main.py's command line: unknown --config fields (nested ones too) and user
errors as one line with exit status 2; any other exception keeps its traceback."""

import os
import subprocess
import sys

import pytest

from sppnet_jax import cli, errors
from sppnet_jax.classification.config import base_config
from sppnet_jax.core.data import image_files
from tests.helpers import ROOT, SMALL_RECIPE, main_command, run_main

DOC = 'sppnet_jax/classification/config.py'


@pytest.mark.parametrize('argv, message', [
    (['--config.batch_sise=3'], 'unknown config field --config.batch_sise: did you '
     f'mean --config.batch_size? the fields are listed in {DOC}.'),
    (['--config.eval.protocl=x'], 'unknown config field --config.eval.protocl: '
     f'did you mean --config.eval.protocol? the fields are listed in {DOC}.'),
    (['--config.eval.zzz=1'], 'unknown config field --config.eval.zzz: the '
     f'fields are listed in {DOC}.'),
    (['--config.seed.x=1'], 'unknown config field --config.seed.x: '
     f'--config.seed is a value, not a group of fields; the fields are listed in '
     f'{DOC}.'),
])
def test_unknown_fields_are_named_with_the_close_match(argv, message):
  assert cli.unknown_config_field(base_config(), ['--workdir=w'] + argv,
                                  DOC) == message


def test_known_fields_pass():
  assert cli.unknown_config_field(
      base_config(), ['--config.eval.protocol=x', '--config.seed=1'], DOC) is None


def test_main_prints_a_misspelled_nested_field_as_one_line(tmp_path):
  result = run_main(f'--workdir={tmp_path}', '--config.eval.protocl=ten_view')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      'error: unknown config field --config.eval.protocl: did you mean '
      f'--config.eval.protocol? the fields are listed in {DOC}.']


def test_a_bad_value_fails_before_any_data_is_read(tmp_path):
  result = run_main(f'--workdir={tmp_path}', '--config.eval.protocol=five_view',
                    '--config.data_dir=/no/such/folder')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.eval.protocol='five_view' is not one of ('center', "
      "'ten_view', 'full_image', 'multi_scale', 'feature_map_views'): set "
      '--config.eval.protocol to one of them.')


_RAISE = '''
import sys
from absl import app
sys.argv = ['main.py', '--workdir=/nonexistent', '--config=tests/small_recipe.py']
import main
from sppnet_jax import errors
from sppnet_jax.classification import main as task
def run(*args, **kwargs):
  raise {error}
task.run = run
app.run(main.main, flags_parser=main._parse_flags)
'''


@pytest.mark.parametrize('error, code, last_line', [
    ("errors.DataError('the data is missing: point --config.data_dir at it.')", 2,
     'error: the data is missing: point --config.data_dir at it.'),
    ("ValueError('a bug, not the user: reshape of (3,) into (2,)')", 1,
     'ValueError: a bug, not the user: reshape of (3,) into (2,)'),
])
def test_only_user_errors_become_one_line(error, code, last_line):
  result = subprocess.run([sys.executable, '-c', _RAISE.format(error=error)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == code
  lines = result.stderr.strip().splitlines()
  assert lines[-1] == last_line
  assert ('Traceback (most recent call last):' in result.stderr) == (code != 2)


def test_test_configs_are_locked():
  """A misspelled override in a test fails instead of adding a field."""
  from tests.helpers import small_config  # pylint: disable=g-import-not-at-top
  with pytest.raises(KeyError, match='batch_sise'):
    small_config('', batch_sise=3)


# Every mistake on the command line: one line `error: ...` on stderr, exit
# status 2, nothing on stdout, no workdir, in about the start-up of Python and
# JAX's import. The runs get a `tensorflow` that fails to import and a JAX
# platform that does not exist: a mistake found only after TensorFlow or JAX's
# backend started (or after data was read: --config.data_dir names no folder)
# ends in a traceback instead, and fails here.
DETECTION_RECIPE = 'tests/detection/small_recipe.py'
_RECIPES = ('configs/classification/*.py (configs/NAME.py for short), '
            'configs/detection/*.py and configs/transfer/*.py.')
MISTAKES = {
    'unknown recipe': (
        ['--workdir={w}'], 'configs/nope.py',
        'error: cannot load the recipe --config=configs/nope.py: no such file; '
        f'the recipes are {_RECIPES}'),
    'unreadable recipe': (
        ['--workdir={w}'], 'configs',
        'error: cannot load the recipe --config=configs: a folder, not a recipe '
        f'file; the recipes are {_RECIPES}'),
    'no workdir': (
        [], SMALL_RECIPE,
        "error: --workdir is required: the folder of the run's checkpoints and "
        'logs, e.g. --workdir=runs/tiny.'),
    'unknown mode': (
        ['--workdir={w}', '--mode=evaluate'], SMALL_RECIPE,
        'error: --mode=evaluate is not one of train, eval, export, predict, '
        'proposals, detect, transfer: did you mean --mode=eval?'),
    'unknown flag': (
        ['--workdir={w}', '--work_dir=x'], SMALL_RECIPE,
        "error: Unknown command line flag 'work_dir'. Did you mean: workdir ?"),
    'wrong type': (
        ['--workdir={w}', '--config.batch_size=abc'], SMALL_RECIPE,
        'error: --config.batch_size=abc is not an integer (the recipe has '
        '--config.batch_size=16).'),
    'wrong type in a tuple': (
        ['--workdir={w}', '--config.train_sizes=abc'], SMALL_RECIPE,
        'error: --config.train_sizes=abc is not a tuple of integers (the recipe '
        "has --config.train_sizes='(64, 48)')."),
    'out of range': (
        ['--workdir={w}', '--config.batch_size=0'], SMALL_RECIPE,
        'error: config.batch_size=0 must be a positive multiple of the device '
        'count: set --config.batch_size to one, e.g. 256.'),
    'out of range, detection': (
        ['--workdir={w}', '--config.finetune.batch_size=0'], DETECTION_RECIPE,
        'error: config.finetune.num_steps, batch_size, eval_every_steps, '
        'log_every_steps and checkpoint_every_steps must be at least 1.'),
    'images in train mode': (
        ['--workdir={w}', '{t}/a.jpg'], SMALL_RECIPE,
        'error: unexpected arguments: {t}/a.jpg (only --mode=predict and detect '
        'take image files as arguments)'),
    'predict: no such file': (
        ['--workdir={w}', '--mode=predict', '{t}/a.jpg'], SMALL_RECIPE,
        'error: no such file or folder: {t}/a.jpg: name image files or folders '
        'that exist.'),
    'detect: no such file': (
        ['--workdir={w}', '--mode=detect', '{t}/a.jpg'], DETECTION_RECIPE,
        'error: no such file or folder: {t}/a.jpg: name image files or folders '
        'that exist.'),
    'predict: no such folder': (
        ['--workdir={w}', '--mode=predict', '--images={t}/photos/,{t}/b.png'],
        SMALL_RECIPE,
        'error: no such file or folder: {t}/photos/, {t}/b.png: name image '
        'files or folders that exist.'),
    'detect: no such folder': (
        ['--workdir={w}', '--mode=detect', '--images={t}/photos/,{t}/b.png'],
        DETECTION_RECIPE,
        'error: no such file or folder: {t}/photos/, {t}/b.png: name image '
        'files or folders that exist.'),
}


def _run_mistake(args, recipe, tmp_path):
  fake = tmp_path / 'no_tensorflow' / 'tensorflow'
  fake.mkdir(parents=True, exist_ok=True)
  (fake / '__init__.py').write_text(
      "raise ImportError('TensorFlow was imported before the command line "
      "was checked')\n")
  env = dict(os.environ, JAX_PLATFORMS='no_such_platform',
             PYTHONPATH=os.pathsep.join(
                 [str(fake.parent)] + os.environ.get('PYTHONPATH', '').split(
                     os.pathsep)))
  args = [arg.format(w=tmp_path / 'workdir', t=tmp_path) for arg in args]
  args += ['--config.data_dir=/no/such/folder'] * (recipe != 'configs/nope.py')
  return subprocess.run(main_command(*args, recipe=recipe), cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('name', MISTAKES)
def test_a_mistake_is_one_line_and_creates_nothing(name, tmp_path):
  args, recipe, line = MISTAKES[name]
  result = _run_mistake(args, recipe, tmp_path)
  assert (result.returncode, result.stdout, result.stderr.splitlines()) == (
      2, '', [line.format(t=tmp_path)]), result.stderr[-3000:]
  assert not (tmp_path / 'workdir').exists()


def test_predict_and_detect_agree_on_missing_files(tmp_path):
  (tmp_path / 'a.jpg').write_bytes(b'')
  args = ['--workdir={w}', '{t}/a.jpg', '{t}/gone.jpg', '{t}/gone/']
  predict = _run_mistake(['--mode=predict'] + args, SMALL_RECIPE, tmp_path)
  detect = _run_mistake(['--mode=detect'] + args, DETECTION_RECIPE, tmp_path)
  assert predict.returncode == detect.returncode == 2
  assert predict.stderr == detect.stderr == (
      f'error: no such file or folder: {tmp_path}/gone.jpg, {tmp_path}/gone/: '
      'name image files or folders that exist.\n')
  assert not (tmp_path / 'workdir').exists()


def test_a_file_named_directly_and_through_its_folder_is_taken_once(
    tmp_path, monkeypatch):
  for name in ('b.png', 'a.jpg', 'notes.txt', 'c.JPEG'):
    (tmp_path / name).write_bytes(b'')
  (tmp_path / 'more').mkdir()
  (tmp_path / 'more' / 'd.jpg').write_bytes(b'')
  folder, a, b, c = (str(tmp_path), str(tmp_path / 'a.jpg'),
                     str(tmp_path / 'b.png'), str(tmp_path / 'c.JPEG'))
  d = str(tmp_path / 'more' / 'd.jpg')
  assert image_files.named_images([a, folder]) == [a, b, c]
  assert image_files.named_images([folder, a]) == [b, c, a]
  assert image_files.named_images([folder + '/', folder]) == [
      folder + '/a.jpg', folder + '/b.png', folder + '/c.JPEG']
  monkeypatch.chdir(tmp_path)  # Relative and absolute names of one file.
  assert image_files.named_images(['./a.jpg', folder, 'more', d]) == [
      './a.jpg', b, c, d]
  # A file named twice is taken twice, as asked.
  assert image_files.named_images([a, a]) == [a, a]
  (tmp_path / 'empty').mkdir()
  with pytest.raises(errors.DataError, match='no image files'):
    image_files.named_images([str(tmp_path / 'empty')])
  with pytest.raises(errors.DataError, match='no images given'):
    image_files.named_images([])


def test_help_is_short_and_starts_with_the_modes_and_recipes():
  result = subprocess.run([sys.executable, 'main.py', '--help'], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and result.stderr == ''
  lines = result.stdout.splitlines()
  assert len(lines) < 40
  text = result.stdout
  for mode in ('train', 'eval', 'predict', 'detect', 'export', 'proposals'):
    assert f'\n  {mode} ' in text
  for recipe in ('configs/tiny.py', 'configs/sppnet_mult.py',
                 'configs/detection/tiny.py', 'configs/detection/voc07.py'):
    assert recipe in text
  assert '--config.batch_size=' in text and '--helpfull' in text
  full = subprocess.run([sys.executable, 'main.py', '--helpfull'], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert full.returncode == 0
  assert full.stdout.startswith(text.strip()) and '--coordinator_address' in (
      full.stdout)
