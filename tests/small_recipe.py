"""The test-sized recipe as a config file, for runs of main.py in a subprocess
(--config=tests/small_recipe.py --config.data_dir=...)."""

from tests.helpers import small_config


def get_config():
  return small_config('')
