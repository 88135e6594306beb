"""Fine-tuning fc6, fc7 and a new fc8 on regions pooled from the conv5 cache
(the paper's section 4; defaults from the authors' `spp_finetune_voc.m`).

Each step draws its global mini-batch with `sampling.RegionSampler` (a pure
function of seed and step: 25% foreground, flips), every process pools its
share from the cached maps (`split_regions.pool_batch`), and the jitted step
(`finetune_step.py`) updates the replicated fc layers on the mesh; the loop
(metrics, divergence, preemption, saving, validation) is `stage_loop`'s, on
`core.train_loop` as classification's. The learning rate drops by `lr_drop`
every `lr_drop_every` steps (the authors' step schedule); weights decay,
biases learn at twice the rate (core.optim, as classification).

Orbax keeps the latest states in WORKDIR/finetune/checkpoints (every
`checkpoint_every_steps`, on SIGTERM or a preemption notice, at the end) and,
with a validation split, the best by its mAP in WORKDIR/finetune/best. A run
stopped anywhere resumes at its last saved step and continues exactly as if it
had not stopped: the batches, the dropout masks (keyed by step and position
in the global batch) and the optimizer state all come back.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import ml_collections
import numpy as np
import optax
from absl import logging

from sppnet_jax.core import checkpoints, metric_output, optim, parallel
from sppnet_jax.core.train_state import TrainState
from sppnet_jax.detection.backbone import (Backbone, detection_params,
                                           detector_model)
from sppnet_jax.detection.features.cache import LruImageCache
from sppnet_jax.detection.features.pooling import PoolingSettings
from sppnet_jax.detection.inference.head import head_params
from sppnet_jax.detection.training import (sampling, split_regions,
                                           stage_loop)
from sppnet_jax.detection.training.finetune_step import make_finetune_step

FOLDER = 'finetune'
# The fields that change what fine-tuning computes: a resumed run must keep
# them (the others say where, how often to log, save and validate).
TRAINING_FIELDS = ('num_steps', 'batch_size', 'positive_fraction',
                   'fg_threshold', 'bg_low', 'add_ground_truth', 'flip',
                   'learning_rate', 'lr_drop_every', 'lr_drop', 'momentum',
                   'weight_decay', 'bias_lr_multiplier')


def schedule_of(settings) -> optax.Schedule:
  """The step schedule: learning_rate * lr_drop^(step // lr_drop_every)."""
  every = int(settings.lr_drop_every)
  if every <= 0:
    return optax.constant_schedule(settings.learning_rate)
  return optax.exponential_decay(settings.learning_rate, every,
                                 settings.lr_drop, staircase=True)


@dataclasses.dataclass
class Finetuning:
  """The state and everything the loop needs."""
  model: object
  state: TrainState
  state_sharding: object
  schedule: object
  mesh: object
  store: checkpoints.Checkpoints


def _initial_state(config, backbone, num_classes, mesh, schedule):
  tx = optim.create_optimizer(config.finetune, schedule)
  params = head_params(detection_params(
      backbone, num_classes, jax.random.key(config.seed)))
  model = detector_model(backbone, num_classes)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  replicated = parallel.replicated_sharding(mesh)
  sharding = jax.tree.map(lambda _: replicated, state)
  return model, jax.device_put(state, sharding), sharding


def _training_fields(config) -> dict:
  fields = {k: config.finetune[k] for k in TRAINING_FIELDS}
  fields.update(seed=config.seed, scales=list(config.detection.scales),
                backbone=config.detection.backbone)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def open_finetuning(config, workdir: str, backbone: Backbone,
                    class_names) -> tuple[Finetuning, int]:
  """The fine-tuning state: resumed from the latest checkpoint, or new.
  Returns it with its step."""
  mesh = parallel.create_mesh()
  schedule = schedule_of(config.finetune)
  model, state, sharding = _initial_state(config, backbone, len(class_names),
                                          mesh, schedule)
  store = checkpoints.Checkpoints(os.path.join(workdir, FOLDER), config,
                                  tuple(class_names), policy=config.finetune,
                                  best_metric='map')
  state, step = store.resume(state, _training_fields(config), 'fine-tuning')
  return Finetuning(model, state, sharding, schedule, mesh, store), step


def final_params(config, workdir: str, backbone: Backbone,
                 class_names) -> tuple[dict, int]:
  """The fine-tuned fc6-fc8 the later stages use: the best by validation mAP
  when there is a validation split, else the last step's."""
  run, _ = open_finetuning(config, workdir, backbone, class_names)
  try:
    state, step = run.store.restore_final(
        run.state, use_best=bool(config.finetune.val_split),
        what='fine-tuned state')
  finally:
    run.store.close()
  return jax.tree.map(np.asarray, state.params), step


def _local_batches(config, sampler, regions, maps, pooling, first_step):
  process_index, process_count = jax.process_index(), jax.process_count()
  for step in range(first_step, config.finetune.num_steps):
    batch = sampler(step, process_index, process_count)
    yield {'pooled': split_regions.pool_batch(batch, regions, maps, pooling),
           'label': batch.labels, 'position': batch.positions}


def _log_validation(num_steps: int):
  """The console's line per validation: its mAP (softmax scores), and the
  last training report when there is one."""

  def log(step: int, value: float, report_step: int, report: dict) -> None:
    metric_output.log_validation_line(
        f'Fine-tuning step {step}/{num_steps}: validation mAP (softmax) '
        f'{value:.4f}', report_step, report, prefix='finetune_',
        unit='regions')
  return log


def run_finetuning(config: ml_collections.ConfigDict, workdir: str,
                   backbone: Backbone, class_names,
                   regions: split_regions.SplitRegions, maps: LruImageCache,
                   pooling: PoolingSettings, *,
                   validate: Callable[[dict], float] | None = None) -> int:
  """Fine-tunes until `finetune.num_steps` (resuming); `validate(params)`
  gives the validation mAP of fc6-fc8 params. Returns the last step."""
  settings = config.finetune
  parallel.local_batch_size(settings.batch_size, 'finetune.batch_size')
  run, step = open_finetuning(config, workdir, backbone, class_names)
  stage_loop.log_resume('Fine-tuning', step, settings.num_steps)
  with stage_loop.stage_loop(
      run.store, os.path.join(workdir, FOLDER), settings, run.state, step,
      what='fine-tuning', prefix='finetune_', unit='regions',
      examples_per_step=settings.batch_size,
      training_fields=_training_fields(config),
      learning_rate_flag='finetune.learning_rate', validate=validate,
      log_validation=_log_validation(settings.num_steps)) as loop:
    if step >= settings.num_steps:
      return step
    sampler = sampling.RegionSampler(
        regions.labels, batch_size=settings.batch_size,
        positive_fraction=settings.positive_fraction,
        fg_threshold=settings.fg_threshold,
        bg_range=(settings.bg_low, settings.fg_threshold), flip=settings.flip,
        seed=config.seed)
    logging.info('Fine-tuning fc6-fc8 on %d regions (%d foreground) of %d '
                 'images: steps %d..%d of %d regions.',
                 sampler.num_foreground + sampler.num_background,
                 sampler.num_foreground, sampler.num_images, step,
                 settings.num_steps, settings.batch_size)
    train_step = make_finetune_step(run.model, run.schedule,
                                    seed=config.seed, mesh=run.mesh,
                                    state_sharding=run.state_sharding)
    return loop.run(parallel.prefetch_to_mesh(_local_batches(
        config, sampler, regions, maps, pooling, step), run.mesh),
                    train_step, run.state, step)
