"""Overfeat-7 (Overfeat-5 with conv6 and conv7, 512 3x3 filters each; an 18x18
map at 224, total stride 12): SPP (pyramid 6,3,2,1), multi-size training: 224
crops and the same crops resized to 180, one epoch per size, on ImageNet.

Schedule: the card's SPP multi-size recipe (`sppnet_mult.py`): batch 128,
learning rate 0.01, 160 epochs of cosine decay. The paper trained the networks
other than ZF-5 for 90 epochs (ZF-5: 70) at learning rate 0.01, divided by 10
twice: --config.num_epochs=90 --config.learning_rate=0.01 give its length and
rate (its step decay is not offered; the decay here is cosine).
"""

from configs.classification import sppnet_mult


def get_config():
  config = sppnet_mult.get_config()
  config.architecture = 'overfeat7'
  return config
