"""End-to-end training of the SPP-net detector on the embedded 8-class set,
on a CPU in minutes (README, "Detection": end-to-end training).

Everything of configs/detection/tiny.py (the classification default run as
the backbone, trained first when missing; proposals; one test scale of 344;
the set's own validation split picks the best checkpoint) with the detector
trained in one stage through the exact region pyramid instead of the
pipeline's cached conv5, fine-tuning, SVMs and ridge box regression:
Fast R-CNN's image-centric batches of 2 images x 64 regions, one multi-task
loss, conv3 and up learning.
"""

from configs.detection import tiny


def get_config():
  config = tiny.get_config()
  config.detection.training = 'end_to_end'

  e2e = config.end_to_end
  e2e.scales = ()  # the test scale, 344
  e2e.images_per_batch = 2
  e2e.regions_per_image = 64
  e2e.train_layers = 'conv3'
  # The backbone's He-initialised fc layers learn at the classification
  # recipe's rate, as tiny.py's fine-tuning (0.01).
  e2e.learning_rate = 0.01
  e2e.num_steps = 1500
  e2e.lr_drop_every = 1000
  e2e.val_split = 'val'
  e2e.eval_every_steps = 500
  e2e.log_every_steps = 100
  e2e.checkpoint_every_steps = 250
  return config
