"""The detection recipe shrunk to seconds, for runs of main.py in tests:
configs/detection/tiny.py on a handful of images with the narrow test
backbone (64-pixel inputs), pass --config.data_dir and
--config.detection.backbone."""

from configs.detection import tiny


def get_config():
  config = tiny.get_config()
  config.detection.train_backbone = False
  config.detection.scales = (128,)
  config.proposals.num_workers = 0
  config.proposals.max_boxes = 60
  config.finetune.num_steps = 6
  config.finetune.batch_size = 16
  config.finetune.lr_drop_every = 4
  config.finetune.eval_every_steps = 3
  config.finetune.log_every_steps = 2
  config.finetune.checkpoint_every_steps = 2
  config.svm.retrain_limit = 100
  config.test.batch_boxes = 64
  return config
