"""PASCAL VOC 2007 as in the paper: train on trainval, test on test; prepare
TFDS voc/2007 first with `python -m sppnet_jax.detection.prepare_voc`."""

from sppnet_jax.detection.config import base_config


def get_config():
  config = base_config()
  config.dataset = 'voc/2007'
  config.train_split = 'train+validation'
  config.eval_split = 'test'
  return config
