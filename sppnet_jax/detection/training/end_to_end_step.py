"""The jitted step of end-to-end detection training: the gradient of the
multi-task loss (`end_to_end_model.batch_loss`) through fc layers, the
region pyramid and the conv layers that learn, applied by SGD with the
frozen layers masked out.

Dropout draws each region's masks from the key of (step, its position in the
step's global batch: image position * R + row), so a batch split over any
number of processes and devices is trained exactly as on one device. The
reported sums are `core.train_state.batch_sums` over the valid regions, with
the loss parts and the foreground fraction beside the loss.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from sppnet_jax.core import optim
from sppnet_jax.core.train_state import TrainState, batch_sums, jit_train_step
from sppnet_jax.detection.training import end_to_end_model


def create_optimizer(settings, schedule, params: dict,
                     frozen: tuple[str, ...]) -> optax.GradientTransformation:
  """`core.optim`'s SGD (weight decay, biases at bias_lr_multiplier) on the
  layers that learn; no update at all (nor decay) for the `frozen` ones."""
  return optax.multi_transform(
      {'train': optim.create_optimizer(settings, schedule),
       'frozen': optax.set_to_zero()},
      end_to_end_model.trainable_labels(params, frozen))


def end_to_end_step(state: TrainState, batch: dict, *, model, schedule,
                    seed: int, freeze_conv: bool, box_loss_weight: float):
  """One step on a global batch of `image_batches.assemble`'s arrays."""
  step_key = jax.random.fold_in(jax.random.key(seed), state.step)
  num_regions = batch['label'].shape[1]
  positions = (batch['position'][:, None] * num_regions
               + jnp.arange(num_regions)).reshape(-1)
  keys = jax.vmap(lambda p: jax.random.fold_in(step_key, p))(positions)

  def loss_fn(params):
    return end_to_end_model.batch_loss(
        model, params, batch, train=True, keys=keys, freeze_conv=freeze_conv,
        box_loss_weight=box_loss_weight)

  grads, outputs = jax.grad(loss_fn, has_aux=True)(state.params)
  sums = batch_sums(outputs, batch['valid'].reshape(-1))
  sums['learning_rate'] = schedule(state.step)
  return state.apply_gradients(grads=grads), sums


def make_end_to_end_step(model, schedule, *, seed: int, freeze_conv: bool,
                         box_loss_weight: float, mesh=None,
                         state_sharding=None):
  """The jitted step: state donated and replicated, batch over the data
  axis; one compilation per shape bucket."""
  step = functools.partial(end_to_end_step, model=model, schedule=schedule,
                           seed=seed, freeze_conv=freeze_conv,
                           box_loss_weight=box_loss_weight)
  return jit_train_step(step, mesh, state_sharding)
