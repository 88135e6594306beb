"""main.py's command line: unknown --config fields (nested ones too) and user
errors as one line with exit status 2; any other exception keeps its traceback."""

import subprocess
import sys

import pytest

from sppnet_jax import cli
from sppnet_jax.classification.config import base_config
from tests.helpers import ROOT, run_main

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
