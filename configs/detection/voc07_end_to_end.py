"""End-to-end training of the SPP-net detector on PASCAL VOC 2007 (train on
trainval, 5,011 images; test on test, 4,952): Fast R-CNN's published
settings on the ZF-5 SPP-net backbone and its exact region pyramid.

Prepare TFDS voc/2007 first (`python -m sppnet_jax.detection.data.prepare_voc`)
and give the classification backbone (configs/classification/sppnet_mult.py
trained on ImageNet):
  python main.py --config=configs/detection/voc07_end_to_end.py --workdir=DIR \
      --config.detection.backbone=IMAGENET_WORKDIR

Where each value comes from (FRCN = Fast R-CNN, Girshick, ICCV 2015, arXiv
1504.08083, and its released code rbgirshick/fast-rcnn; SPP = configs/
detection/voc07.py, the paper's pipeline):
  training                    end_to_end (FRCN section 2)
  images_per_batch 2,         FRCN 2.3: N = 2 images, R = 128 regions
  regions_per_image 64
  positive_fraction 0.25,     FRCN 2.3: 25% foreground at IoU >= 0.5,
  fg 0.5, bg [0.1, 0.5)       background IoU in [0.1, 0.5)
  ground truth added, flips   FRCN 2.3 (its roidb and flipped images)
  difficult objects           dropped: FRCN's pascal_voc.py (use_diff=False)
  scales ()                   the test scale, 688: SPP's single scale (FRCN
                              used 600 with the long side capped at 1000 on
                              VGG16; this backbone's scale is SPP's)
  train_layers 'conv3'        FRCN Table 5 (conv3_1 and up, its default)
  box_loss_weight 1,          FRCN 2.3 (lambda = 1); the stds are its code's
  stds (0.1, 0.1, 0.2, 0.2)   BBOX_NORMALIZE_STDS
  lr 1e-3 for 30k, 1e-4 for   FRCN 2.3 (VOC07: 30k + 10k iterations)
  10k (40k steps)
  momentum 0.9, decay 5e-4,   FRCN 2.3 and its solver
  biases at 2x lr
  fc8 N(0, 0.01),             FRCN 2.3 (backbone.py, end_to_end_model.py)
  bbox_pred N(0, 0.001)
  validation                  none: trainval is all for training, the last
                              step is used (FRCN likewise)
  test                        FRCN/SPP: softmax, NMS 0.3 per class, at most
                              100 per image, the detector's own deltas
"""

from configs.detection import voc07


def get_config():
  config = voc07.get_config()
  config.detection.training = 'end_to_end'
  config.detection.use_difficult = False
  e2e = config.end_to_end
  e2e.num_steps = 40000
  e2e.lr_drop_every = 30000
  e2e.val_split = ''
  return config
