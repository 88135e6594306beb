"""The detector's fc layers on pooled regions at test time: fc6, fc7 and fc8
of the backbone SPP-net with fc8 replaced (classes + background,
`backbone.detection_params`). Only fc6-fc8 see regions (the conv layers
computed the maps the regions were pooled from), so only they are applied
here, and only the layers asked for. fc6 and fc7 run whole, or as their
low-rank factors (`svd.py`) when given.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

HEAD_LAYERS = ('fc6', 'fc7', 'fc8')
OUTPUT_LAYERS = ('pool5', 'fc6', 'fc7', 'logits')


def head_params(params: dict) -> dict:
  """The trained part of the detector's parameters."""
  return {name: params[name] for name in HEAD_LAYERS}


def _fc(module, name, inputs, factors):
  """Layer `name` of the module, or x A B + c of its factors (A, B, c)."""
  if name not in factors:
    return getattr(module, name)(inputs)
  first, second, bias = (f.astype(module.dtype) for f in factors[name])
  return (inputs @ first) @ second + bias


def _outputs(module, pooled, layers, factors):
  outputs = {'pool5': pooled}
  if {'fc6', 'fc7', 'logits'} & set(layers):
    outputs['fc6'] = nn.relu(_fc(module, 'fc6', pooled, factors))
  if {'fc7', 'logits'} & set(layers):
    outputs['fc7'] = nn.relu(_fc(module, 'fc7', outputs['fc6'], factors))
  if 'logits' in layers:
    outputs['logits'] = module.fc8(outputs['fc7']).astype(jnp.float32)
  return {name: outputs[name] for name in layers}


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def layer_outputs(model, params: dict, pooled: jnp.ndarray, start,
                  size: int, layers: tuple = OUTPUT_LAYERS,
                  factors: dict | None = None) -> dict:
  """Rows start..start + size of pool5 vectors (R, D) -> {layer: (size, .)}
  of the detector at test time (no dropout) for `layers` of OUTPUT_LAYERS
  (fc6, fc7 after ReLU): only those are computed and returned. `factors`:
  {layer: (A, B, c)} of `svd.factor_head` for the layers that run
  factored. `start` is traced (one compilation per (R, size) and factor
  shapes), start + size <= R."""
  rows = jax.lax.dynamic_slice_in_dim(pooled, start, size)
  return model.apply({'params': params}, rows.astype(model.dtype), layers,
                     factors or {}, method=_outputs)
