"""The schedule and optimizer against hand-written formulas."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sppnet_jax.core import optim


def _config(**overrides):
  config = ml_collections.ConfigDict(dict(
      learning_rate=0.1, warmup_epochs=2.0, min_learning_rate_ratio=0.1,
      momentum=0.9, weight_decay=1e-2, bias_lr_multiplier=2.0))
  config.update(overrides)
  return config


def test_warmup_then_cosine_to_the_floor():
  config = _config()
  steps_per_epoch, total = 10, 100
  schedule = optim.learning_rate_schedule(config, steps_per_epoch, total)
  warmup, peak, floor = 20, 0.1, 0.01
  for step in [0, 5, 19, 20, 21, 50, 99, 100]:
    if step < warmup:
      expected = peak * step / warmup
    else:
      progress = (step - warmup) / (total - warmup)
      expected = floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5,
                               err_msg=f'step {step}')


def test_sgd_momentum_decay_skips_biases_and_scales_their_rate():
  config = _config(warmup_epochs=0.0, min_learning_rate_ratio=1.0)  # constant 0.1
  schedule = optim.learning_rate_schedule(config, 10, 100)
  tx = optim.create_optimizer(config, schedule)
  params = {'conv1': {'kernel': jnp.array([1.0, -2.0]), 'bias': jnp.array([0.5])}}
  grads = [{'conv1': {'kernel': jnp.array([0.3, 0.1]), 'bias': jnp.array([0.2])}},
           {'conv1': {'kernel': jnp.array([-0.1, 0.4]), 'bias': jnp.array([-0.3])}}]
  state = tx.init(params)
  # Caffe's SGD: v = m*v + (g + wd*w); w -= lr*v (optax folds lr in the same way).
  w, b = np.array([1.0, -2.0]), np.array([0.5])
  vw, vb = np.zeros(2), np.zeros(1)
  for g in grads:
    updates, state = tx.update(g, state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    vw = 0.9 * vw + (np.asarray(g['conv1']['kernel']) + 1e-2 * w)
    vb = 0.9 * vb + np.asarray(g['conv1']['bias'])
    w, b = w - 0.1 * vw, b - 2.0 * 0.1 * vb
  np.testing.assert_allclose(params['conv1']['kernel'], w, rtol=1e-6)
  np.testing.assert_allclose(params['conv1']['bias'], b, rtol=1e-6)


def test_frozen_layers_keep_their_values_and_the_rest_still_learn():
  config = _config(warmup_epochs=0.0, min_learning_rate_ratio=1.0)  # constant 0.1
  tx = optim.create_optimizer(config, optim.learning_rate_schedule(config, 10, 100),
                              frozenset({'conv1'}))
  params = {'conv1': {'kernel': jnp.array([1.0, -2.0]), 'bias': jnp.array([0.5])},
            'fc6': {'kernel': jnp.array([3.0]), 'bias': jnp.array([-1.0])}}
  grads = {'conv1': {'kernel': jnp.array([0.3, 0.1]), 'bias': jnp.array([0.2])},
           'fc6': {'kernel': jnp.array([0.5]), 'bias': jnp.array([0.25])}}
  updates, _ = tx.update(grads, tx.init(params), params)
  # conv1: nothing, not even the decay; fc6: the first step of Caffe's SGD.
  np.testing.assert_array_equal(updates['conv1']['kernel'], [0.0, 0.0])
  np.testing.assert_array_equal(updates['conv1']['bias'], [0.0])
  np.testing.assert_allclose(updates['fc6']['kernel'], [-0.1 * (0.5 + 1e-2 * 3.0)],
                             rtol=1e-6)
  np.testing.assert_allclose(updates['fc6']['bias'], [-2.0 * 0.1 * 0.25], rtol=1e-6)


def test_layers_below_names_the_frozen_layers_of_each_network():
  from sppnet_jax.core import architectures  # pylint: disable=g-import-not-at-top
  from sppnet_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  assert architectures.layers_below('zf5', 'conv1') == frozenset()
  assert architectures.layers_below('zf5', 'fc6') == {f'conv{i}' for i in range(1, 6)}
  assert architectures.layers_below('overfeat7', 'fc6') == {
      f'conv{i}' for i in range(1, 8)}
  assert architectures.layers_below('convnet5', 'conv3') == {'conv1', 'conv2'}
  try:
    architectures.layers_below('zf5', 'conv7')
  except ConfigError as error:
    assert str(error) == ("config.trainable_from='conv7' is not a layer of ZF-5: "
                          'set --config.trainable_from to one of conv1, conv2, '
                          'conv3, conv4, conv5, fc6, fc7, fc8.')
  else:
    raise AssertionError('conv7 of ZF-5 was accepted')
