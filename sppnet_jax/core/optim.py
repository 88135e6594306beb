"""The optimizer: SGD with momentum, L2 weight decay on weights only, linear
warm-up then cosine decay to a floor; biases may learn at a multiple of the rate
(the authors' Caffe solver used 2x); frozen layers get no update at all (no
decay, no momentum state)."""

import jax
import optax


def learning_rate_schedule(config, steps_per_epoch: int, total_steps: int):
  peak = config.learning_rate
  warmup = int(round(config.warmup_epochs * steps_per_epoch))
  warmup = min(warmup, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else peak, peak_value=peak,
      warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
      end_value=peak * config.min_learning_rate_ratio)


def is_bias(path) -> bool:
  return getattr(path[-1], 'key', None) == 'bias'


def create_optimizer(config, schedule,
                     frozen: frozenset[str] = frozenset()
                     ) -> optax.GradientTransformation:
  """Weights: decay added to the gradient (Caffe's L2), then momentum SGD.
  Biases: no decay, the schedule scaled by `bias_lr_multiplier`. The layers
  named in `frozen` (top-level keys of the params) keep their values: their
  update is zero, and XLA drops the gradient work that only they need."""
  weights = optax.chain(
      optax.add_decayed_weights(config.weight_decay),
      optax.sgd(schedule, momentum=config.momentum))
  multiplier = config.bias_lr_multiplier
  biases = optax.sgd(lambda step: multiplier * schedule(step),
                     momentum=config.momentum)

  def label(path, _):
    if getattr(path[0], 'key', None) in frozen:
      return 'frozen'
    return 'bias' if is_bias(path) else 'weight'

  transforms = {'weight': weights, 'bias': biases}
  if frozen:
    transforms['frozen'] = optax.set_to_zero()
  return optax.multi_transform(
      transforms, lambda params: jax.tree_util.tree_map_with_path(label, params))
