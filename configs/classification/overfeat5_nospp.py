"""Overfeat-5 without SPP (pool5 to 6x6, 224 only) on ImageNet: `zfnet.py`
(batch 256, lr 0.035 after 5 warm-up epochs, 150 epochs, cosine decay) on the
Overfeat-5 trunk. The paper: 90 epochs, lr 0.01 divided by 10 twice."""

from configs.classification import zfnet


def get_config():
  config = zfnet.get_config()
  config.model = 'nospp'
  config.architecture = 'overfeat5'
  return config
