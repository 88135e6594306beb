"""Overfeat-7 with SPP (6,3,2,1), trained at 224 and 180 (one epoch per size) on
ImageNet: `sppnet_mult.py` (batch 128, lr 0.01, 160 epochs, cosine decay) on the
Overfeat-7 trunk. The paper: 90 epochs, lr 0.01 divided by 10 twice."""

from configs.classification import sppnet_mult


def get_config():
  config = sppnet_mult.get_config()
  config.architecture = 'overfeat7'
  return config
