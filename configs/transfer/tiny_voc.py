"""The default transfer run: the paper's VOC 2007 protocol (section 3.2) on
the embedded detection set, on a CPU in minutes (README, "Transfer").

The backbone is the classification default run (runs/tiny, trained here
first when it is missing): a quarter-width SPP-net trained at 112 pixels on
the embedded 10-class set, never on these images. Each image of the
detection set's 8 classes is labelled with the classes it shows (a class
present where it has a non-difficult box); SVMs train on its 600 'train'
images and are scored on its 200 'test' images with VOC classification AP.
Features: the SPP layer's 6 x 6 level of the whole image with its short side
at 112 (the paper's 224 halved, as the backbone's input).
"""

from sppnet_jax.transfer.config import base_config


def get_config():
  config = base_config()
  config.dataset = 'embedded'
  config.train_split = 'train'
  config.test_split = 'test'
  config.backbone = 'runs/tiny'
  config.train_backbone = True
  config.backbone_recipe = 'configs/classification/tiny.py'
  config.layer = 'spp6'
  config.view = 'full'
  config.size = 112
  config.full_image_step = 16
  config.batch_pixels = 16 * 112 * 112
  return config
