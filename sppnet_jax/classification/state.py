"""The freshly initialised train state of a classification run, shared by
training (which may then start it from another run, see `warm_start`) and by
everything that restores a checkpoint into its shapes."""

import jax
import jax.numpy as jnp

from sppnet_jax.core import architectures, optim, parallel
from sppnet_jax.core.train_state import TrainState


def frozen_layers(config) -> frozenset[str]:
  """The layers below config.trainable_from: they keep their values."""
  return architectures.layers_below(config.architecture, config.trainable_from)


def initial_state(config, model, schedule, mesh):
  """The initialised train state (seeded by config.seed), replicated over
  `mesh`, and its shardings. The optimizer state's structure depends on the
  frozen layers, so a checkpoint restores only into the state of its own
  config.trainable_from."""
  tx = optim.create_optimizer(config, schedule, frozen_layers(config))
  init_size = model.input_size or max(config.train_sizes)

  def init(key):
    images = jnp.zeros((1, init_size, init_size, 3), model.dtype)
    params = model.init(key, images, train=False)['params']
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)

  replicated = parallel.replicated_sharding(mesh)
  abstract = jax.eval_shape(init, jax.random.key(config.seed))
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  state = jax.jit(init, out_shardings=state_sharding)(jax.random.key(config.seed))
  return state, state_sharding
