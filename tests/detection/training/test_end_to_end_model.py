"""The end-to-end detector's loss and step: the gradient reaching the conv
layers through the region pyramid against central differences (float64, a
narrow ZF-5), the multi-task loss against a loop written here, which layers
learn under each `train_layers`, and one compilation per shape bucket."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sppnet_jax.core import compile_count
from sppnet_jax.core.train_state import TrainState
from sppnet_jax.core.zf5 import SPPNet
from sppnet_jax.detection.backbone import Backbone
from sppnet_jax.detection.training import end_to_end_model, end_to_end_step

K = 3  # classes


def _network(dtype=jnp.float32):
  """A narrow ZF-5 SPP-net without LRN (LRN computes in float32 whatever
  the model's dtype, which would leave float32 noise in a float64 loss)."""
  return SPPNet(num_classes=K + 1, width_multiplier=0.1, fc_dim=16,
                initializer='he', dtype=dtype, lrn='none')


def _params(model, seed=0):
  variables = model.init(jax.random.key(seed), jnp.zeros((1, 96, 96, 3)),
                         train=False)
  backbone = Backbone(None, model, jax.tree.map(np.asarray,
                                                variables['params']), 0, '', ())
  params = end_to_end_model.init_params(backbone, K, jax.random.key(seed + 1))
  # Larger box weights than N(0, 0.001), so the box term moves fc7 visibly.
  params['bbox_pred']['kernel'] = params['bbox_pred']['kernel'] * 100
  return params


def _batch(seed=0, n=2, r=6, height=96, width=112):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, height, width, 3), np.uint8)
  rows, cols = 5, 6  # conv5 of 96 x 112 for ZF-5
  y0 = rng.integers(0, rows - 1, (n, r))
  x0 = rng.integers(0, cols - 1, (n, r))
  y1 = y0 + rng.integers(1, rows - y0 + 1)
  x1 = x0 + rng.integers(1, cols - x0 + 1)
  cells = np.stack([y0, x0, y1, x1], -1).astype(np.int32)
  valid = np.ones((n, r), bool)
  valid[-1, -2:] = False
  labels = rng.integers(0, K + 1, (n, r)).astype(np.int32)
  labels[0, :2] = (1, 2)
  targets = rng.normal(size=(n, r, 4)).astype(np.float32) * 2
  return dict(image=images, cells=cells, valid=valid, label=labels,
              target=targets, position=np.arange(n, dtype=np.int32))


def test_conv_gradient_through_region_pooling_matches_central_differences():
  with jax.enable_x64():
    model = _network(jnp.float64)
    params = jax.tree.map(lambda x: np.asarray(x, np.float64), _params(model))
    batch = _batch()
    keys = jax.vmap(lambda p: jax.random.fold_in(jax.random.key(3), p))(
        jnp.arange(batch['label'].size))

    def loss(p):
      return end_to_end_model.batch_loss(model, p, batch, train=True,
                                         keys=keys)[0]

    grads = jax.jit(jax.grad(loss))(params)
    loss_jit = jax.jit(loss)
    rng = np.random.default_rng(0)
    checked = 0
    for layer, name in (('conv1', 'kernel'), ('conv3', 'kernel'),
                        ('conv5', 'bias'), ('fc6', 'kernel'),
                        ('bbox_pred', 'kernel')):
      value = params[layer][name]
      grad = np.asarray(grads[layer][name])
      # The entries of largest gradient and a few random ones.
      picks = [np.unravel_index(np.argmax(np.abs(grad)), value.shape)] + [
          tuple(rng.integers(0, s) for s in value.shape) for _ in range(3)]
      assert np.abs(grad).max() > 1e-6, layer  # the gradient reaches it
      for index in picks:
        eps = 1e-6
        plus = jax.tree.map(np.copy, params)
        minus = jax.tree.map(np.copy, params)
        plus[layer][name][index] += eps
        minus[layer][name][index] -= eps
        numeric = (float(loss_jit(plus)) - float(loss_jit(minus))) / (2 * eps)
        np.testing.assert_allclose(grad[index], numeric, rtol=1e-5,
                                   atol=1e-8, err_msg=f'{layer} {index}')
        checked += 1
    assert checked == 20


def test_multi_task_loss_against_a_loop():
  rng = np.random.default_rng(1)
  m = 7
  logits = rng.normal(size=(m, K + 1)).astype(np.float32)
  deltas = rng.normal(size=(m, K, 4)).astype(np.float32)
  labels = np.array([0, 1, 2, 3, 1, 0, 2], np.int32)
  targets = rng.normal(size=(m, 4)).astype(np.float32) * 1.5
  valid = np.array([1, 1, 1, 1, 1, 0, 0], bool)
  out = end_to_end_model.region_losses(jnp.asarray(logits), jnp.asarray(deltas),
                                       jnp.asarray(labels), jnp.asarray(targets),
                                       box_loss_weight=0.5)
  total = 0.0
  for i in range(m):
    z = logits[i].astype(np.float64)
    ce = np.log(np.exp(z - z.max()).sum()) + z.max() - z[labels[i]]
    box = 0.0
    if labels[i] > 0:
      for d, t in zip(deltas[i, labels[i] - 1], targets[i]):
        x = float(d) - float(t)
        box += 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5
    np.testing.assert_allclose(out['cls'][i], ce, rtol=1e-5)
    np.testing.assert_allclose(out['box'][i], box, rtol=1e-5, atol=1e-6)
    if valid[i]:
      total += ce + 0.5 * box
  np.testing.assert_allclose(end_to_end_model.mean_loss(out, valid),
                             total / valid.sum(), rtol=1e-5)


@pytest.mark.parametrize('train_layers, frozen',
                         [('fc6', ('conv1', 'conv2', 'conv3', 'conv4',
                                   'conv5')),
                          ('conv3', ('conv1', 'conv2')), ('conv2', ('conv1',)),
                          ('all', ())])
def test_which_layers_learn(train_layers, frozen):
  names = ('conv1', 'conv2', 'conv3', 'conv4', 'conv5')
  assert end_to_end_model.frozen_layers(train_layers, names) == frozen
  model = _network()
  params = _params(model)
  settings = dict(weight_decay=5e-4, momentum=0.9, bias_lr_multiplier=2.0)

  class Settings:  # the optimizer reads attributes
    pass

  for k, v in settings.items():
    setattr(Settings, k, v)
  schedule = optax.constant_schedule(0.1)
  tx = end_to_end_step.create_optimizer(Settings, schedule, params, frozen)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  step = end_to_end_step.make_end_to_end_step(
      model, schedule, seed=0, freeze_conv=train_layers == 'fc6',
      box_loss_weight=1.0)
  new, sums = step(state, _batch())
  assert int(sums['count']) == 10
  for layer in params:
    moved = any(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(params[layer]), jax.tree.leaves(new.params[layer])))
    assert moved == (layer not in frozen), layer


def test_one_compilation_per_shape_bucket():
  model = _network()
  params = _params(model)
  schedule = optax.constant_schedule(0.01)
  tx = optax.sgd(schedule)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  step = end_to_end_step.make_end_to_end_step(
      model, schedule, seed=0, freeze_conv=False, box_loss_weight=1.0)
  with compile_count.compilations() as compiled:
    for seed, (height, width) in enumerate([(96, 112), (96, 112), (112, 96),
                                            (96, 112), (112, 96)]):
      state, _ = step(state, _batch(seed, height=height, width=width))
  assert compiled.count('end_to_end_step') == 2, compiled
