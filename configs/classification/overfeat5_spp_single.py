"""Overfeat-5 (Overfeat's fast model as modified by Chatfield et al.; an 18x18
conv5 map at 224, total stride 12): SPP (pyramid 6,3,2,1), single-size training
at 224, on ImageNet.

Schedule: the card's SPP single-size recipe (`sppnet_single.py`): batch 256,
learning rate 0.01, 160 epochs of cosine decay. The paper trained the networks
other than ZF-5 for 90 epochs (ZF-5: 70) at learning rate 0.01, divided by 10
twice: --config.num_epochs=90 --config.learning_rate=0.01 give its length and
rate (its step decay is not offered; the decay here is cosine).
"""

from configs.classification import sppnet_single


def get_config():
  config = sppnet_single.get_config()
  config.architecture = 'overfeat5'
  return config
