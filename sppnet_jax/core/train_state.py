"""What every jitted training step of the project shares: the train state,
the softmax classification outputs of a batch (images for classification,
regions for detection) and their per-batch sums.

jax, flax and optax only: no TensorFlow, clu or ml_collections, so that the
steps run, and are benchmarked, on a bare accelerator image. A step returns
per-batch sums, each exactly as clu's `Average.from_model_output` sums (masked
rows count zero); `core.train_loop.TrainMetrics` turns them into a clu
collection outside the step.
"""

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from sppnet_jax.core import parallel


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


def classification_step(state: TrainState, logits_of, labels, schedule,
                        label_smoothing: float = 0.0):
  """One SGD step of softmax classification: the gradient of the mean
  cross-entropy of `logits_of(params)` (B, K) against `labels` (B,), applied;
  returns the new state and the batch's sums with the step's learning rate."""

  def loss_fn(params):
    outputs = classification_outputs(logits_of(params), labels,
                                     label_smoothing)
    return outputs['loss'].mean(), outputs

  grads, outputs = jax.grad(loss_fn, has_aux=True)(state.params)
  sums = batch_sums(outputs)
  sums['learning_rate'] = schedule(state.step)
  return state.apply_gradients(grads=grads), sums


def jit_train_step(step, mesh=None, state_sharding=None):
  """`step(state, batch)` jitted with the state donated; with a mesh, the batch
  sharded over its data axis, the state as `state_sharding` and the sums
  replicated."""
  if mesh is None:
    return jax.jit(step, donate_argnums=0)
  return jax.jit(step, in_shardings=(state_sharding,
                                     parallel.batch_sharding(mesh)),
                 out_shardings=(state_sharding,
                                parallel.replicated_sharding(mesh)),
                 donate_argnums=0)
