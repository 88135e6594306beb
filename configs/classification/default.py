"""The base of every classification recipe: SPP-net on ImageNet with the default
fields. Every field and its meaning: `sppnet_jax/classification/config.py`
(`base_config`); the other recipes here override what differs."""

from sppnet_jax.classification.config import base_config


def get_config():
  return base_config()
