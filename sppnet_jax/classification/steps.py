"""The jitted train and eval steps of classification: jax, flax and optax only.

This module (with the model in `core.zf5` and the optimizer in `core.optim`)
imports no TensorFlow, clu or ml_collections, so that the steps run, and are
benchmarked, on a bare accelerator image. A step returns per-batch sums, each
exactly as clu's `Average.from_model_output` sums (masked rows count zero);
`metrics.py` turns them into clu collections outside the step.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from sppnet_jax.core import parallel
from sppnet_jax.core.zf5 import normalize_images


class TrainState(train_state.TrainState):
  """params, opt_state and step; apply_fn and tx are static."""


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray,
                  label_smoothing: float = 0.0) -> jnp.ndarray:
  """Per-example softmax cross-entropy against integer labels."""
  num_classes = logits.shape[-1]
  targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def topk_correct(logits: jnp.ndarray, labels: jnp.ndarray, k: int) -> jnp.ndarray:
  """1.0 where the label is among the k highest logits (k capped at the class
  count), per example."""
  k = min(k, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


def classification_outputs(logits, labels, label_smoothing: float = 0.0) -> dict:
  """The per-example loss, top-1 and top-5 hits."""
  return dict(loss=cross_entropy(logits, labels, label_smoothing),
              top1=topk_correct(logits, labels, 1),
              top5=topk_correct(logits, labels, 5))


def batch_sums(outputs: dict, mask=None) -> dict:
  """{name: total over the rows where `mask` is set} and 'count' (int32)."""
  if mask is None:
    mask = jnp.ones(next(iter(outputs.values())).shape, bool)
  sums = {name: jnp.where(mask, value, jnp.zeros_like(value)).sum()
          for name, value in outputs.items()}
  sums['count'] = jnp.where(mask, jnp.ones(mask.shape, jnp.int32),
                            jnp.zeros(mask.shape, jnp.int32)).sum()
  return sums


def train_step(state: TrainState, batch: dict, *, model, schedule, seed: int,
               label_smoothing: float):
  """One SGD step on a global batch; returns the new state and the batch's sums
  (and the learning rate of the step)."""
  dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)

  def loss_fn(params):
    images = normalize_images(batch['image'], model.dtype)
    logits = model.apply({'params': params}, images, train=True,
                         rngs={'dropout': dropout_key})
    outputs = classification_outputs(logits, batch['label'], label_smoothing)
    return outputs['loss'].mean(), outputs

  grads, outputs = jax.grad(loss_fn, has_aux=True)(state.params)
  sums = batch_sums(outputs)
  sums['learning_rate'] = schedule(state.step)
  return state.apply_gradients(grads=grads), sums


def make_train_step(model, schedule, *, seed: int = 0, label_smoothing: float = 0.0,
                    mesh=None, state_sharding=None):
  """The jitted train step with the state donated; with a mesh, the batch sharded
  over its data axis and the state as `state_sharding`."""
  step = functools.partial(train_step, model=model, schedule=schedule,
                           seed=seed, label_smoothing=label_smoothing)
  if mesh is None:
    return jax.jit(step, donate_argnums=0)
  return jax.jit(step, in_shardings=(state_sharding, parallel.batch_sharding(mesh)),
                 out_shardings=(state_sharding, parallel.replicated_sharding(mesh)),
                 donate_argnums=0)


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
