"""Test set-up: quiet TensorFlow, one persistent JAX compilation cache for the
whole session (its subprocesses included), so that the many small runs of the
same shapes compile once, and the small data set that the training tests share
(read only), and the tiny detector that the detection tests share (read
only: tests that change a run copy it). The package is imported as installed (pip install -e .); `tests`
and `configs` resolve from the repository root, which pytest puts on the path
for the `tests` package.

The generated data sets' default folders (~/.cache/sppnet_jax/...) are
pointed at one temporary folder of the session, for its subprocesses and
pytest-xdist workers too (they inherit the environment), and the session
fails if it changed anything under ~/.cache/sppnet_jax: tests write only in
temporary folders."""

import os
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      os.path.join(tempfile.gettempdir(), 'sppnet_jax_test_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')

USER_CACHE = os.path.join(os.path.expanduser('~'), '.cache', 'sppnet_jax')
# Set by the first pytest process of a session (xdist's controller), which
# makes the folder and removes it at the end; its workers inherit it.
_SESSION_DATA_VAR = 'SPPNET_TEST_SESSION_DATA'
_OWNS_SESSION_DATA = _SESSION_DATA_VAR not in os.environ
if _OWNS_SESSION_DATA:
  os.environ[_SESSION_DATA_VAR] = tempfile.mkdtemp(prefix='sppnet_jax_test_data_')
os.environ['SPPNET_DATA_DIR'] = os.path.join(
    os.environ[_SESSION_DATA_VAR], 'embedded')
os.environ['SPPNET_DETECTION_DATA_DIR'] = os.path.join(
    os.environ[_SESSION_DATA_VAR], 'embedded-detection')


def tree_state(root: str) -> dict:
  """{path below root: (size, mtime_ns)} of every folder and file (empty if
  root does not exist): any write below root changes it."""
  state = {}
  for directory, folders, files in os.walk(root):
    for name in [''] + folders + files:
      path = os.path.join(directory, name)
      try:
        stat = os.lstat(path)
      except FileNotFoundError:
        continue
      state[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
  return state


_USER_CACHE_BEFORE = tree_state(USER_CACHE)


import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


def pytest_sessionfinish(session, exitstatus):
  """Fails the session if it wrote under ~/.cache/sppnet_jax (checked once, by
  the process that set the session up), and removes the session's data."""
  del exitstatus
  if not _OWNS_SESSION_DATA:
    return
  shutil.rmtree(os.environ[_SESSION_DATA_VAR], ignore_errors=True)
  after = tree_state(USER_CACHE)
  if after != _USER_CACHE_BEFORE:
    changed = sorted(set(after.items()) ^ set(_USER_CACHE_BEFORE.items()))
    names = sorted({path for path, _ in changed})
    session.config.get_terminal_writer().line(
        f'\nFAILED: the tests wrote under {USER_CACHE} (tests must write only '
        f'in temporary folders): {", ".join(names[:5])}'
        + (f' and {len(names) - 5} more' if len(names) > 5 else ''), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope='session')
def small_data(tmp_path_factory) -> str:
  """The embedded set at test size (80 train, 30 val images), made once."""
  from tests.helpers import small_dataset  # pylint: disable=g-import-not-at-top
  return small_dataset(str(tmp_path_factory.mktemp('small_data')))


@pytest.fixture(scope='session')
def detection_setup(tmp_path_factory) -> tuple[str, str]:
  """(data folder, backbone workdir): the embedded detection set at 12 train
  images (one garbage: train/images/000002.jpg), 3 val, 4 test; the narrow
  test SPP-net (tests/data/zf5_before_layout) as the backbone."""
  from sppnet_jax.detection.data import embedded  # pylint: disable=g-import-not-at-top
  from tests.classification.test_checkpoint_compat import SAVED  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('detection')
  data = str(root / 'data')
  embedded.ensure_embedded_detection_dataset(
      data, num_train=12, num_val=3, num_test=4, num_workers=0)
  with open(os.path.join(data, 'train', 'images', '000002.jpg'), 'wb') as f:
    f.write(b'not a jpeg')
  backbone = root / 'backbone'
  shutil.copytree(SAVED, backbone / 'checkpoints')
  return data, str(backbone)


@pytest.fixture(scope='session')
def trained_detector(detection_setup, tmp_path_factory) -> tuple[str, str, str]:
  """(workdir, stdout, stderr) of one uninterrupted run of every detection
  stage on one device: main.py with tests/detection/small_recipe.py."""
  from tests.helpers import run_main  # pylint: disable=g-import-not-at-top
  data, backbone = detection_setup
  workdir = str(tmp_path_factory.mktemp('trained_detector') / 'run')
  result = run_main(f'--workdir={workdir}', f'--config.data_dir={data}',
                    f'--config.detection.backbone={backbone}',
                    recipe='tests/detection/small_recipe.py', timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result.stdout, result.stderr
