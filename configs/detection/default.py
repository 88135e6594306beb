"""The embedded detection default: the generated 8-class set, CPU-sized."""

from sppnet_jax.detection.config import base_config


def get_config():
  return base_config()
