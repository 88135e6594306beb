"""End-to-end training of the SPP-net detector (detection.training =
'end_to_end'): Fast R-CNN's one-stage training through the exact region
pyramid, conv layers included, beside the paper's pipeline.

Each step draws N images x R regions with `image_sampling.ImageSampler` (a
pure function of seed and step), every process assembles its images'
arrays (`image_batches`: resized, mirrored, padded to the step's shape
bucket), and the jitted step (`end_to_end_step.py`) updates the replicated
parameters on the mesh; the loop (metrics, divergence, preemption, saving,
validation) is `stage_loop`'s, as fine-tuning's. The learning
rate drops by `lr_drop` every `lr_drop_every` steps; weights decay, biases
learn at bias_lr_multiplier x the rate; frozen layers (train_layers) learn
nothing.

Orbax keeps the latest states in WORKDIR/end_to_end/checkpoints (every
`checkpoint_every_steps`, on SIGTERM or a preemption notice, at the end) and,
with a validation split, the best by its mAP in WORKDIR/end_to_end/best. A
run stopped anywhere resumes at its last saved step and continues exactly:
the batches, the dropout masks (keyed by step and region position) and the
optimizer state all come back. Training images are decoded once into memory
(every process holds the whole split: fine for the embedded set and VOC07's
5,011 images at ~2 GB).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from sppnet_jax.core import checkpoints, parallel
from sppnet_jax.core.train_state import TrainState
from sppnet_jax.detection.backbone import Backbone, detector_model
from sppnet_jax.detection.config import training_scales
from sppnet_jax.detection.data import sources
from sppnet_jax.detection.features.conv5 import MultiScaleConv5
from sppnet_jax.detection.inference.box_head import HeadBoxRegressor
from sppnet_jax.detection.inference.head import head_params
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.training import (end_to_end_model, end_to_end_step,
                                           image_batches, image_sampling,
                                           stage_loop)
from sppnet_jax.detection.training.finetune import schedule_of
from sppnet_jax.detection.training.sampling import label_regions

FOLDER = 'end_to_end'
# The fields that change what training computes: a resumed run must keep
# them (the others say where, how often to log, save and validate).
TRAINING_FIELDS = ('num_steps', 'images_per_batch', 'regions_per_image',
                   'positive_fraction', 'fg_threshold', 'bg_low',
                   'add_ground_truth', 'flip', 'scales', 'bucket_step',
                   'train_layers', 'box_loss_weight', 'box_target_stds',
                   'learning_rate', 'lr_drop_every', 'lr_drop', 'momentum',
                   'weight_decay', 'bias_lr_multiplier')


@dataclasses.dataclass
class EndToEnd:
  """The state and everything the loop needs."""
  model: object
  state: TrainState
  state_sharding: object
  schedule: object
  mesh: object
  store: checkpoints.Checkpoints
  frozen: tuple


def _training_fields(config) -> dict:
  fields = {k: config.end_to_end[k] for k in TRAINING_FIELDS}
  fields.update(seed=config.seed, test_scales=list(config.detection.scales),
                size_step=config.detection.size_step,
                projection_rule=config.detection.projection_rule,
                use_difficult=config.detection.use_difficult,
                backbone=config.detection.backbone)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def open_end_to_end(config, workdir: str, backbone: Backbone,
                    class_names) -> tuple[EndToEnd, int]:
  """The training state: resumed from the latest checkpoint, or new (the
  backbone's layers, a new fc8 and bbox_pred). Returns it with its step."""
  mesh = parallel.create_mesh()
  settings = config.end_to_end
  schedule = schedule_of(settings)
  model = detector_model(backbone, len(class_names))
  params = end_to_end_model.init_params(backbone, len(class_names),
                                        jax.random.key(config.seed))
  frozen = end_to_end_model.frozen_layers(
      settings.train_layers, [l.name for l in model.table.conv_layers])
  tx = end_to_end_step.create_optimizer(settings, schedule, params, frozen)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  replicated = parallel.replicated_sharding(mesh)
  sharding = jax.tree.map(lambda _: replicated, state)
  state = jax.device_put(state, sharding)
  store = checkpoints.Checkpoints(os.path.join(workdir, FOLDER), config,
                                  tuple(class_names), policy=settings,
                                  best_metric='map')
  state, step = store.resume(state, _training_fields(config),
                             'end-to-end training')
  return EndToEnd(model, state, sharding, schedule, mesh, store, frozen), step


def final_params(config, workdir: str, backbone: Backbone,
                 class_names) -> tuple[dict, int]:
  """The trained parameters test time uses: the best by validation mAP when
  there is a validation split, else the last step's (NumPy)."""
  run, _ = open_end_to_end(config, workdir, backbone, class_names)
  try:
    state, step = run.store.restore_final(
        run.state, use_best=bool(config.end_to_end.val_split),
        what='end-to-end trained state')
  finally:
    run.store.close()
  return jax.tree.map(np.asarray, state.params), step


def test_time_parts(config, backbone: Backbone, num_classes: int,
                    params: dict, svd_factors: dict | None = None):
  """(fc6-fc8 params, the detector's own box regressor or None when
  bbox_regression.enabled is False, conv5 of its trained conv layers at the
  test scales) of trained `params`: what `inference.detector.Detector` and
  its callers take. `svd_factors`: fc6/fc7's truncated SVD, which the
  regressor then runs as the detector does."""
  model = detector_model(backbone, num_classes)
  box = params[end_to_end_model.BOX_LAYER]
  head = jax.device_put(head_params(params))  # once, for every call
  regressor = (HeadBoxRegressor(model, head,
                                np.asarray(box['kernel']),
                                np.asarray(box['bias']),
                                tuple(config.end_to_end.box_target_stds),
                                svd_factors)
               if config.bbox_regression.enabled else None)
  conv5 = MultiScaleConv5(model, end_to_end_model.network_params(params),
                          config.detection.scales, config.detection.size_step)
  return head, regressor, conv5


def load_train_images(source, split: str, proposal_store: ProposalStore, *,
                      add_ground_truth: bool, use_difficult: bool
                      ) -> list[image_batches.TrainImage]:
  """Every readable image of `split` with its labelled regions
  (`sampling.label_regions` of its proposals and ground truth)."""
  out = []
  for example in sources.decoded_examples(source, split):
    height, width = example.image.shape[:2]
    proposals = proposal_store.load(example.image_id, (height, width))
    regions = label_regions(proposals, example.boxes, example.labels,
                            example.difficult,
                            add_ground_truth=add_ground_truth,
                            use_difficult=use_difficult)
    out.append(image_batches.TrainImage(example.image, example.boxes, regions))
  return out


def geometry_of(config, architecture: str) -> image_batches.BatchGeometry:
  return image_batches.BatchGeometry(
      scales=training_scales(config), size_step=config.detection.size_step,
      bucket_step=config.end_to_end.bucket_step,
      projection_rule=config.detection.projection_rule,
      architecture=architecture,
      target_stds=tuple(config.end_to_end.box_target_stds))


def _local_batches(config, sampler, images, geometry, first_step):
  process_index, process_count = jax.process_index(), jax.process_count()
  for step in range(first_step, config.end_to_end.num_steps):
    whole = sampler.global_batch(step)
    bucket = image_batches.bucket_shape(whole, images, geometry)
    mine = image_sampling.share_of(whole, process_index, process_count)
    yield image_batches.assemble(mine, images, geometry, bucket)


def run_end_to_end(config: ml_collections.ConfigDict, workdir: str,
                   backbone: Backbone, class_names,
                   images: list[image_batches.TrainImage], *,
                   validate: Callable[[dict], float] | None = None) -> int:
  """Trains until `end_to_end.num_steps` (resuming); `validate(params)`
  gives the validation mAP of the parameters. Returns the last step."""
  settings = config.end_to_end
  parallel.local_batch_size(settings.images_per_batch,
                            'end_to_end.images_per_batch')
  run, step = open_end_to_end(config, workdir, backbone, class_names)
  stage_loop.log_resume('End-to-end training', step, settings.num_steps)

  def log_validation(step: int, value: float, *_) -> None:
    logging.info('End-to-end step %d/%d: validation mAP %.4f.', step,
                 settings.num_steps, value)

  def report(step: int, scalars: dict) -> None:
    logging.info(
        'End-to-end step %d/%d: loss %.4f (classes %.4f, boxes %.4f), '
        'top-1 %.2f%%, foreground %.1f%%, %.1f images/s, lr %.3g.', step,
        settings.num_steps, scalars['end_to_end_loss'],
        scalars['end_to_end_cls'], scalars['end_to_end_box'],
        100 * scalars['end_to_end_top1'],
        100 * scalars['end_to_end_foreground'],
        scalars['end_to_end_images_per_sec'],
        scalars['end_to_end_learning_rate'])

  with stage_loop.stage_loop(
      run.store, os.path.join(workdir, FOLDER), settings, run.state, step,
      what='end-to-end training', prefix='end_to_end_', unit='images',
      examples_per_step=settings.images_per_batch,
      training_fields=_training_fields(config),
      learning_rate_flag='end_to_end.learning_rate', validate=validate,
      log_validation=log_validation) as loop:
    if step >= settings.num_steps:
      return step
    geometry = geometry_of(config, run.model.architecture)
    sampler = image_sampling.ImageSampler(
        [image.regions for image in images],
        images_per_batch=settings.images_per_batch,
        regions_per_image=settings.regions_per_image,
        positive_fraction=settings.positive_fraction,
        fg_threshold=settings.fg_threshold, bg_low=settings.bg_low,
        flip=settings.flip, num_scales=len(geometry.scales), seed=config.seed)
    logging.info('End-to-end training (%s learn; frozen: %s) on %d images: '
                 'steps %d..%d of %d images x %d regions at scales %s.',
                 settings.train_layers, ', '.join(run.frozen) or 'none',
                 sampler.eligible.size, step, settings.num_steps,
                 settings.images_per_batch, settings.regions_per_image,
                 geometry.scales)
    train_step = end_to_end_step.make_end_to_end_step(
        run.model, run.schedule, seed=config.seed,
        freeze_conv=settings.train_layers == 'fc6',
        box_loss_weight=settings.box_loss_weight, mesh=run.mesh,
        state_sharding=run.state_sharding)
    return loop.run(parallel.prefetch_to_mesh(_local_batches(
        config, sampler, images, geometry, step), run.mesh),
                    train_step, run.state, step,
                    part_names=('cls', 'box', 'foreground'), report=report)
