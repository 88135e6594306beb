"""Overfeat-5 (Overfeat's fast model as modified by Chatfield et al.; an 18x18
conv5 map at 224, total stride 12): the no-SPP baseline (a fixed max pool to
6x6, 224 only), on ImageNet.

Schedule: the card's no-SPP recipe (`zfnet.py`): batch 256, learning rate 0.035
after 5 warm-up epochs, 150 epochs of cosine decay. The paper trained the
networks other than ZF-5 for 90 epochs (ZF-5: 70) at learning rate 0.01, divided
by 10 twice: --config.num_epochs=90 --config.learning_rate=0.01 give its length
and rate (its step decay is not offered; the decay here is cosine).
"""

from configs.classification import zfnet


def get_config():
  config = zfnet.get_config()
  config.model = 'nospp'
  config.architecture = 'overfeat5'
  return config
