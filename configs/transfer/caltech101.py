"""The paper's Caltech101 protocol (section 3.3, Table 7): an ImageNet-trained
SPP-net's features, no fine-tuning, one-vs-rest linear SVMs, 30 training and
up to 50 test images per class, mean per-class accuracy over 10 random splits
(reported as mean +- std).

The data is TFDS caltech101, prepared offline from the official archive
(python -m sppnet_jax.transfer.prepare_caltech, README
"Transfer"); its train and test splits are read as one set of 102 classes
(with background_google, as the paper counts them) and split here. The
archive's folders work too: --config.dataset=folder
--config.data_dir=.../101_ObjectCategories. Set --config.backbone to the
ImageNet workdir. The paper's best for ZF-5 is the SPP layer's 6 x 6 level
of the full image at short side 224.
"""

from sppnet_jax.transfer.config import base_config


def get_config():
  config = base_config()
  config.dataset = 'caltech101'
  config.data_dir = ''  # the TFDS data_dir ('' = ~/tensorflow_datasets)
  config.backbone = ''  # --config.backbone=IMAGENET_WORKDIR
  config.layer = 'spp6'
  config.view = 'full'
  config.size = 224
  config.full_image_step = 32
  config.splits.num_splits = 10
  config.splits.train_per_class = 30
  config.splits.test_per_class = 50
  return config
