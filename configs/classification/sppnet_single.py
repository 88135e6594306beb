"""SPP-net (ZF-5 + pyramid 6,3,2,1), single-size training at 224 on ImageNet.

The recipe this project was specified with: batch 256, learning rate 0.01, 160 epochs, cosine decay.
The paper trained ZF-5 for 70 epochs, learning rate 0.01 divided by 10 twice.
"""

from sppnet_jax.classification.config import base_config


def get_config():
  config = base_config()
  config.model = 'sppnet'
  config.train_sizes = (224,)
  config.batch_size = 256
  config.learning_rate = 0.01
  config.num_epochs = 160
  return config
