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

from sppnet_jax.core import parallel
from sppnet_jax.core.train_state import (TrainState, batch_sums,
                                         classification_outputs)


def _row_logits(model, params, pooled_row, key):
  return model.apply({'params': params}, pooled_row[None], train=True,
                     method='head', rngs={'dropout': key})[0]


def finetune_step(state: TrainState, batch: dict, *, model, schedule,
                  seed: int):
  """One SGD step of fc6-fc8 on a global batch of pooled regions:
  batch = {'pooled' (B, D), 'label' (B,), 'position' (B,)}."""
  step_key = jax.random.fold_in(jax.random.key(seed), state.step)
  keys = jax.vmap(lambda p: jax.random.fold_in(step_key, p))(batch['position'])

  def loss_fn(params):
    logits = jax.vmap(functools.partial(_row_logits, model, params))(
        batch['pooled'].astype(model.dtype), keys)
    outputs = classification_outputs(logits, batch['label'])
    return outputs['loss'].mean(), outputs

  grads, outputs = jax.grad(loss_fn, has_aux=True)(state.params)
  sums = batch_sums(outputs)
  sums['learning_rate'] = schedule(state.step)
  return state.apply_gradients(grads=grads), sums


def make_finetune_step(model, schedule, *, seed: int, mesh, state_sharding):
  """The jitted step: state donated and replicated, batch over the data axis."""
  step = functools.partial(finetune_step, model=model, schedule=schedule,
                           seed=seed)
  return jax.jit(step, in_shardings=(state_sharding,
                                     parallel.batch_sharding(mesh)),
                 out_shardings=(state_sharding,
                                parallel.replicated_sharding(mesh)),
                 donate_argnums=0)
