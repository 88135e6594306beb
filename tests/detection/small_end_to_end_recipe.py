"""The end-to-end detection recipe shrunk to seconds, for runs of main.py in
tests: configs/detection/tiny_end_to_end.py on a handful of images with the
narrow test backbone (64-pixel inputs), pass --config.data_dir and
--config.detection.backbone."""

from configs.detection import tiny_end_to_end


def get_config():
  config = tiny_end_to_end.get_config()
  config.detection.train_backbone = False
  config.detection.scales = (128,)
  config.proposals.num_workers = 0
  config.proposals.max_boxes = 60
  config.end_to_end.regions_per_image = 16
  config.end_to_end.num_steps = 6
  config.end_to_end.lr_drop_every = 4
  config.end_to_end.eval_every_steps = 3
  config.end_to_end.log_every_steps = 2
  config.end_to_end.checkpoint_every_steps = 2
  config.test.batch_boxes = 64
  return config
