"""The fc layers on pooled regions: the detector's outputs per layer and its
fine-tuning step.

The detector is the backbone SPP-net with fc8 replaced (classes + background,
`backbone.detection_params`); only fc6-fc8 see regions, so only they are
applied and trained here (conv1-conv5 are frozen: their maps come from the
cache). Dropout draws each region's mask from the key of its position in the
step's global batch, so that a batch split over any number of processes and
devices is trained exactly as on one device.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from sppnet_jax.classification.steps import TrainState, batch_sums
from sppnet_jax.classification.steps import classification_outputs
from sppnet_jax.core import parallel

HEAD_LAYERS = ('fc6', 'fc7', 'fc8')
OUTPUT_LAYERS = ('pool5', 'fc6', 'fc7', 'logits')


def head_params(params: dict) -> dict:
  """The trained part of the detector's parameters."""
  return {name: params[name] for name in HEAD_LAYERS}


def _outputs(module, pooled, layers):
  outputs = {'pool5': pooled}
  if {'fc6', 'fc7', 'logits'} & set(layers):
    outputs['fc6'] = nn.relu(module.fc6(pooled))
  if {'fc7', 'logits'} & set(layers):
    outputs['fc7'] = nn.relu(module.fc7(outputs['fc6']))
  if 'logits' in layers:
    outputs['logits'] = module.fc8(outputs['fc7']).astype(jnp.float32)
  return {name: outputs[name] for name in layers}


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def layer_outputs(model, params: dict, pooled: jnp.ndarray, start,
                  size: int, layers: tuple = OUTPUT_LAYERS) -> dict:
  """Rows start..start + size of pool5 vectors (R, D) -> {layer: (size, .)}
  of the detector at test time (no dropout) for `layers` of OUTPUT_LAYERS
  (fc6, fc7 after ReLU): only those are computed and returned. `start` is
  traced (one compilation per (R, size)), start + size <= R."""
  rows = jax.lax.dynamic_slice_in_dim(pooled, start, size)
  return model.apply({'params': params}, rows.astype(model.dtype), layers,
                     method=_outputs)


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
