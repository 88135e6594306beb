"""Convnet*-5 with SPP (6,3,2,1), trained at 224 on ImageNet: `sppnet_single.py`
(batch 256, lr 0.01, 160 epochs, cosine decay) on the Convnet*-5 trunk. The
paper: 90 epochs, lr 0.01 divided by 10 twice."""

from configs.classification import sppnet_single


def get_config():
  config = sppnet_single.get_config()
  config.architecture = 'convnet5'
  return config
