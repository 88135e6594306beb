"""Shared test fixtures: a small generated image folder and a small config."""

import os

from configs import tiny
from sppnet_jax import embedded_data


def small_dataset(root: str, train_per_class: int = 8, val_per_class: int = 3) -> str:
  """The embedded set at a test size: 10 classes, 80 train and 30 val images."""
  return embedded_data.ensure_embedded_dataset(
      os.path.join(root, 'data'), num_train_per_class=train_per_class,
      num_val_per_class=val_per_class)


def small_config(data_dir: str, **overrides):
  """The tiny recipe shrunk to seconds: narrow model, 64/48-pixel inputs."""
  config = tiny.get_config()
  config.data_dir = data_dir
  config.width_multiplier = 0.1
  config.fc_dim = 16
  config.train_sizes = (64, 48)
  config.eval_size = 64
  config.eval_resize = 72
  config.batch_size = 16
  config.eval_batch_size = 16
  config.num_epochs = 3
  config.log_every_steps = 5
  config.checkpoint_every_steps = 5
  config.shuffle_buffer_size = 128
  config.profile_steps = 0
  config.update(overrides)
  return config
