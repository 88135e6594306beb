"""The jitted fine-tuning step of the detector's fc6-fc8 on a global batch of
pooled regions (conv1-conv5 are frozen: the regions come from the conv5
cache).

Dropout draws each region's mask from the key of its position in the step's
global batch, so that a batch split over any number of processes and devices
is trained exactly as on one device. The loss and the reported sums are
`core.train_state`'s, as classification's.
"""

import functools

import jax

from sppnet_jax.core.train_state import (TrainState, classification_step,
                                         jit_train_step)


def _row_logits(model, params, pooled_row, key):
  return model.apply({'params': params}, pooled_row[None], train=True,
                     method='head', rngs={'dropout': key})[0]


def finetune_step(state: TrainState, batch: dict, *, model, schedule,
                  seed: int):
  """One SGD step of fc6-fc8 on a global batch of pooled regions:
  batch = {'pooled' (B, D), 'label' (B,), 'position' (B,)}."""
  step_key = jax.random.fold_in(jax.random.key(seed), state.step)
  keys = jax.vmap(lambda p: jax.random.fold_in(step_key, p))(batch['position'])

  def logits_of(params):
    return jax.vmap(functools.partial(_row_logits, model, params))(
        batch['pooled'].astype(model.dtype), keys)

  return classification_step(state, logits_of, batch['label'], schedule)


def make_finetune_step(model, schedule, *, seed: int, mesh, state_sharding):
  """The jitted step: state donated and replicated, batch over the data axis."""
  step = functools.partial(finetune_step, model=model, schedule=schedule,
                           seed=seed)
  return jit_train_step(step, mesh, state_sharding)
