"""Loss and accuracy, and the clu metric collections shared by training and eval."""

import flax
import jax
import jax.numpy as jnp
import optax
from clu import metrics


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


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
  loss: metrics.Average.from_output('loss')
  top1: metrics.Average.from_output('top1')
  top5: metrics.Average.from_output('top5')
  learning_rate: metrics.LastValue.from_output('learning_rate')


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
  """Averages over the examples whose mask is set; `num_examples` counts them."""
  loss: metrics.Average.from_output('loss')
  top1: metrics.Average.from_output('top1')
  top5: metrics.Average.from_output('top5')

  def compute(self):
    values = super().compute()
    values['num_examples'] = int(self.top1.count)
    return values


def classification_outputs(logits, labels, label_smoothing: float = 0.0) -> dict:
  """The per-example values both collections average."""
  return dict(loss=cross_entropy(logits, labels, label_smoothing),
              top1=topk_correct(logits, labels, 1),
              top5=topk_correct(logits, labels, 5))
