"""SPP-net detection on PASCAL VOC 2007 as in the paper (section 4, Table 9):
train on trainval (5,011 images), test on test (4,952).

Prepare TFDS voc/2007 first (`python -m sppnet_jax.detection.data.prepare_voc`) and
give the classification backbone: a full-width SPP-net trained on ImageNet
(configs/classification/sppnet_mult.py), e.g.
  python main.py --config=configs/detection/voc07.py --workdir=DIR \
      --config.detection.backbone=IMAGENET_WORKDIR

Where each value comes from (paper = arXiv 1406.4729 / TPAMI 2015; code =
ShaoqingRen/SPP_net):
  scales (688,)               paper, single scale; five scales:
                              --config.detection.scales='(480,576,688,864,1200)'
                              (paper; the code uses 874 for 864)
  scale rule, projection      paper (options: 'authors_code')
  levels {6, 3, 2, 1}         paper (from the backbone's own pyramid)
  proposals                   selective search fast mode, ~2,000 per image
                              (paper; R-CNN's settings)
  fine-tuning                 code: batch 128, 25% positives (IoU >= 0.5),
                              negatives IoU in [0.1, 0.5), flips, ground truth
                              added, lr 1e-3 dropped 10x every 30k steps for
                              90k, momentum 0.9, weight decay 5e-4, biases 2x
                              lr; the paper states 1e-4 for 250k then 1e-5 for
                              50k mini-batches
  validation                  none: trainval is all for training; the last
                              step is used (the code picked its snapshot on
                              the test set, which is not done here)
  SVMs                        code/paper: fc7 scaled to mean norm 20,
                              positives = ground truth, negatives IoU < 0.3,
                              hard-negative mining, C = 1e-3, positive weight
                              2, bias multiplier 10
  box regression              code: pooled conv5, IoU >= 0.5 (code: > 0.5),
                              ridge 4000
  test                        paper/code: NMS 0.3, at most 100 per image
"""

from sppnet_jax.detection.config import base_config


def get_config():
  config = base_config()
  config.dataset = 'voc/2007'
  config.train_split = 'train+validation'
  config.eval_split = 'test'
  config.detection.backbone = ''  # required: --config.detection.backbone=DIR
  config.detection.scales = (688,)
  return config
