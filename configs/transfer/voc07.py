"""The paper's VOC 2007 classification protocol (section 3.2, Table 6): an
ImageNet-trained SPP-net's features, no fine-tuning, one linear SVM per class
trained on trainval, mAP (VOC classification AP) over the 20 classes on test.

Set --config.backbone to the ImageNet workdir (e.g. one trained with
configs/classification/sppnet_mult.py). The paper's best single setting for
ZF-5 is fc7 of the full image at short side 392 (its Table 6; chosen on
validation there); spp6 and fc6, the crop (--config.view=center
--config.size=224) and the warp are the other cells. TFDS voc/2007 is
prepared offline (README, "Detection": prepare_voc).
"""

from sppnet_jax.transfer.config import base_config


def get_config():
  config = base_config()
  config.dataset = 'voc/2007'
  config.train_split = 'train+validation'
  config.test_split = 'test'
  config.backbone = ''  # --config.backbone=IMAGENET_WORKDIR
  config.layer = 'fc7'
  config.view = 'full'
  config.size = 392
  config.full_image_step = 32
  return config
