"""The jitted train and eval steps of classification: jax, flax and optax only.

This module (with the train state, outputs and sums in `core.train_state`, the
model in `core.zf5` and the optimizer in `core.optim`) imports no TensorFlow,
clu or ml_collections, so that the steps run, and are benchmarked, on a bare
accelerator image. A step returns the per-batch sums of
`core.train_state.batch_sums`; `core.train_loop.TrainMetrics` and
`metrics.EvalMetrics` turn them into clu collections outside the step.
"""

import functools

import jax

from sppnet_jax.core import parallel
from sppnet_jax.core.train_state import (TrainState, batch_sums,
                                         classification_outputs,
                                         classification_step, jit_train_step)
from sppnet_jax.core.zf5 import normalize_images


def train_step(state: TrainState, batch: dict, *, model, schedule, seed: int,
               label_smoothing: float):
  """One SGD step on a global batch; returns the new state and the batch's sums
  (and the learning rate of the step)."""
  dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)

  def logits_of(params):
    images = normalize_images(batch['image'], model.dtype)
    return model.apply({'params': params}, images, train=True,
                       rngs={'dropout': dropout_key})

  return classification_step(state, logits_of, batch['label'], schedule,
                             label_smoothing)


def make_train_step(model, schedule, *, seed: int = 0, label_smoothing: float = 0.0,
                    mesh=None, state_sharding=None):
  """The jitted train step with the state donated; with a mesh, the batch sharded
  over its data axis and the state as `state_sharding`."""
  step = functools.partial(train_step, model=model, schedule=schedule,
                           seed=seed, label_smoothing=label_smoothing)
  return jit_train_step(step, mesh, state_sharding)


def eval_step(params, batch: dict, *, model) -> dict:
  """The sums of the batch's rows whose 'mask' is set."""
  images = normalize_images(batch['image'], model.dtype)
  logits = model.apply({'params': params}, images, train=False)
  return batch_sums(classification_outputs(logits, batch['label']), batch['mask'])


def make_eval_step(model, mesh=None, params_sharding=None):
  """The jitted eval step; with a mesh, the batch sharded over its data axis."""
  step = functools.partial(eval_step, model=model)
  if mesh is None:
    return jax.jit(step)
  return jax.jit(step, in_shardings=(params_sharding, parallel.batch_sharding(mesh)),
                 out_shardings=parallel.replicated_sharding(mesh))
