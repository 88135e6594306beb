"""Test set-up: quiet TensorFlow, one persistent JAX compilation cache for the
whole session (its subprocesses included), so that the many small runs of the
same shapes compile once, and the small data set that the training tests share
(read only). The package is imported as installed (pip install -e .); `tests`
and `configs` resolve from the repository root, which pytest puts on the path
for the `tests` package."""

import os
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      os.path.join(tempfile.gettempdir(), 'sppnet_jax_test_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')


import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='session')
def small_data(tmp_path_factory) -> str:
  """The embedded set at test size (80 train, 30 val images), made once."""
  from tests.helpers import small_dataset  # pylint: disable=g-import-not-at-top
  return small_dataset(str(tmp_path_factory.mktemp('small_data')))
