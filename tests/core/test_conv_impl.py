"""The fast implementations in sppnet_jax.core.layers against the plain formulas:
convolutions (im2col, Winograd's F(2x2, 3x3) and the per-pass 'mixed' custom
gradient) against
lax.conv_general_dilated, the LRN's hand-written gradient against autodiff of its
formula, and the separable ceil-mode max pool against reduce_window."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax import LocalResponseNorm, SPPNet
from sppnet_jax import runtime
from sppnet_jax.core.layers import conv2d, max_pool_ceil, max_pool_floor

# (input h, w, cin, cout, kernel, stride, padding): the ZF-5 layers at small
# sizes, odd/even and non-square inputs, and a 1x1 map.
GEOMETRIES = [
    (33, 31, 3, 8, 7, 2, 1),  # conv1
    (32, 32, 3, 5, 7, 2, 1),
    (15, 12, 24, 16, 5, 2, 0),  # conv2 (Winograd of 4 phases at full width)
    (14, 14, 20, 6, 5, 2, 0),
    (13, 16, 5, 4, 6, 2, 2),  # Kernels spanning 3 strides: all phases full;
    (20, 17, 2, 3, 7, 3, 1),  # 3 phases, 1 full;
    (12, 11, 2, 2, 9, 3, 0),  # 3 phases, all full;
    (31, 29, 3, 4, 11, 4, 2),  # Convnet*-5's conv1: 4 phases, 3 full.
    (7, 5, 16, 12, 3, 1, 1),  # conv3-5 (Winograd in 'auto' on a CPU)
    (1, 1, 8, 4, 3, 1, 1),
    (9, 9, 17, 3, 3, 2, 1),
    (8, 6, 5, 7, 3, 1, 1),  # Whole 2x2 tiles; then padding 0 and 2 (odd, part tiles)
    (6, 9, 4, 3, 3, 1, 0),
    (4, 5, 6, 2, 3, 1, 2),
]


def _applies(impl, geometry):
  """'winograd' computes kernels that span 3 strides only (3x3 at stride 1,
  5x5 or 6x6 at stride 2, 7x7 to 9x9 at stride 3, ...)."""
  kernel, stride = geometry[4:6]
  return impl != 'winograd' or 2 * stride < kernel <= 3 * stride


def _reference(x, w, stride, pad):
  return jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((pad, pad), (pad, pad)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize('impl', ['im2col', 'mixed', 'winograd', 'auto', 'xla'])
@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_conv_values_and_gradients_match_lax(impl, geometry):
  if not _applies(impl, geometry):
    pytest.skip('winograd: kernels spanning 3 strides only')
  h, w, cin, cout, k, stride, pad = geometry
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, h, w, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)
  want = _reference(x, kernel, stride, pad)
  got = jax.jit(functools.partial(conv2d, stride=stride, padding=pad, impl=impl))(
      x, kernel)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  cotangent = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
  loss = lambda f: lambda a, b: jnp.sum(f(a, b) * cotangent)
  want_grads = jax.grad(loss(lambda a, b: _reference(a, b, stride, pad)), (0, 1))(
      x, kernel)
  got_grads = jax.jit(jax.grad(loss(lambda a, b: conv2d(a, b, stride, pad, impl)),
                               (0, 1)))(x, kernel)
  for got_grad, want_grad in zip(got_grads, want_grads):
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-3)


def test_unknown_conv_impl_is_a_clear_error():
  with pytest.raises(ValueError, match='unknown convolution'):
    conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), 1, 1, 'fft')
  for size, stride in ((5, 1), (3, 2), (4, 2), (7, 2)):
    with pytest.raises(ValueError, match="kernels that span 3 strides.*'auto'"):
      conv2d(jnp.ones((1, 9, 9, 1)), jnp.ones((size, size, 1, 1)), stride, 1,
             'winograd')


@pytest.mark.parametrize('side,cin,size,stride,padding', [
    (18, 512, 3, 1, 1),  # Overfeat's conv4.
    (55, 96, 5, 2, 0),  # ZF-5's conv2.
])
def test_winograd_is_exact_to_float_rounding_at_full_size(side, cin, size, stride,
                                                          padding):
  """At a full-width layer's shape (one image, 64 output channels), F(2x2, 3x3)
  in float32 stays within a few float32 roundings of a float64 direct
  convolution, like XLA's own."""
  rng = np.random.default_rng(4)
  x = rng.standard_normal((1, side, side, cin))
  kernel = rng.standard_normal((size, size, cin, 64)) * 0.05
  with jax.enable_x64():
    want = np.asarray(_reference(jnp.asarray(x), jnp.asarray(kernel), stride, padding))
  cast = lambda a: jnp.asarray(a, jnp.float32)
  errors = {impl: np.max(np.abs(np.asarray(
      conv2d(cast(x), cast(kernel), stride, padding, impl), np.float64) - want))
            for impl in ('winograd', 'xla')}
  scale = np.max(np.abs(want))
  assert errors['winograd'] < 2e-6 * scale, errors
  assert errors['winograd'] < 4 * errors['xla'] + 1e-7 * scale, errors


def test_auto_takes_winograd_for_large_convolutions_spanning_3_strides_on_a_cpu():
  """The routing: 16 products and no convolution for ZF-5's full-width conv4 at
  batch 32 (13x13 maps) and for its conv2 (5x5/2, 4 phases of 96 channels,
  the last row and column of products without the 3 phases whose third tap
  is zero); one convolution for a kernel spanning 2 or 5 strides, and for too
  few channels or pixels (winograd.WINOGRAD_MIN_*), as at quarter width."""
  def primitives(batch, side, cin, cout, kernel_size=3, stride=1, dtype=jnp.float32,
                 padding=1):
    jaxpr = jax.make_jaxpr(lambda a, b: conv2d(a, b, stride, padding, 'auto'))(
        jax.ShapeDtypeStruct((batch, side, side, cin), dtype),
        jax.ShapeDtypeStruct((kernel_size, kernel_size, cin, cout), dtype))
    return [(e.primitive.name, e.invars[0].aval.shape) for e in jaxpr.eqns]
  assert jax.default_backend() == 'cpu'
  # A 13x13 output is 7x7 tiles: 16 products of (32 * 49 tiles, 384) planes.
  winograd = primitives(32, 13, 384, 384)
  assert winograd.count(('dot_general', (32 * 49, 384))) == 16
  assert 'conv_general_dilated' not in [name for name, _ in winograd]
  assert ('dot_general', (16 * 36, 256)) in primitives(16, 12, 256, 256)  # 2,304 px
  # ZF-5's conv2: 55x55 in, 26x26 out, 13x13 tiles.
  conv2 = primitives(32, 55, 96, 256, 5, 2, padding=0)
  assert 'conv_general_dilated' not in [name for name, _ in conv2]
  tiles = 32 * 13 * 13
  assert conv2.count(('dot_general', (tiles, 4 * 96))) == 9
  assert conv2.count(('dot_general', (tiles, 2 * 96))) == 6
  assert conv2.count(('dot_general', (tiles, 96))) == 1
  for args in ((32, 13, 384, 384, 5), (32, 13, 384, 384, 3, 2),
               (32, 13, 384, 384, 3, 1, jnp.bfloat16),
               (32, 13, 255, 256), (12, 13, 384, 384),  # 2,028 pixels
               (32, 55, 24, 64, 5, 2)):  # conv2 at quarter width: 4 * 24 * 64 channels
    assert 'dot_general' not in [name for name, _ in primitives(*args)], args


def _lrn_formula(x, mode, size, alpha, beta, k=1.0):
  """The LRN written with reduce_window and differentiated by JAX."""
  half = (size - 1) // 2
  pad = (half, size - 1 - half)
  if mode == 'within_channel':
    window, padding, count = (1, size, size, 1), ((0, 0), pad, pad, (0, 0)), size * size
  else:
    window, padding, count = (1, 1, 1, size), ((0, 0), (0, 0), (0, 0), pad), size
  sums = jax.lax.reduce_window(x * x, 0., jax.lax.add, window, (1, 1, 1, 1), padding)
  return x * (k + alpha / count * sums) ** -beta


@pytest.mark.parametrize('mode,size,alpha,beta', [
    ('within_channel', 3, 5e-5, 0.75), ('across_channel', 5, 1e-4, 0.75),
    ('across_channel', 4, 1e-3, 0.6), ('within_channel', 2, 1e-3, 0.5)])
def test_lrn_gradient_matches_autodiff_of_the_formula(mode, size, alpha, beta):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(0, 100, (2, 7, 6, 9)), jnp.float32)
  layer = LocalResponseNorm(mode, size=size, alpha=alpha, beta=beta)
  np.testing.assert_allclose(layer.apply({}, x), _lrn_formula(x, mode, size, alpha, beta),
                             rtol=2e-5)
  cotangent = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
  got = jax.grad(lambda v: jnp.sum(layer.apply({}, v) * cotangent))(x)
  want = jax.grad(lambda v: jnp.sum(_lrn_formula(v, mode, size, alpha, beta) *
                                    cotangent))(x)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('shape', [(110, 110), (26, 20), (7, 6), (3, 3), (4, 9)])
def test_max_pool_ceil_matches_reduce_window(shape):
  rng = np.random.default_rng(2)
  size = shape[0] * shape[1] * 3
  x = jnp.asarray(rng.permutation(size).reshape((1,) + shape + (3,)), jnp.float32)

  def reference(v):  # Caffe's ceil mode as -inf padding of a floor-mode pool.
    pads = [(0, 0)]
    for a in shape:
      out = -(-(a - 3) // 2) + 1
      pads.append((0, max((out - 1) * 2 + 3 - a, 0)))
    pads.append((0, 0))
    return jax.lax.reduce_window(v, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                 pads)

  np.testing.assert_array_equal(max_pool_ceil(x), reference(x))
  cotangent = jnp.asarray(rng.standard_normal(reference(x).shape), jnp.float32)
  got = jax.grad(lambda v: jnp.sum(max_pool_ceil(v) * cotangent))(x)
  want = jax.grad(lambda v: jnp.sum(reference(v) * cotangent))(x)  # No ties here.
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('window,stride,floor', [(3, 2, False), (3, 3, True),
                                                  (2, 2, False)])
def test_max_pool_gradient_is_autodiffs_to_the_last_bit_with_ties(
    window, stride, floor):
  """With many ties (values 0..3), the hand-written gradient equals autodiff
  of the plain formula (-inf padding, then the max of strided slices, rows
  then columns), which shares a tie by halves."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.integers(0, 4, (2, 11, 10, 3)), jnp.float32)

  def formula(v):
    if floor:
      keep = [((a - window) // stride) * stride + window for a in v.shape[1:3]]
      v = v[:, :keep[0], :keep[1]]
    outs = [-(-(a - window) // stride) + 1 for a in v.shape[1:3]]
    v = jnp.pad(v, [(0, 0)] + [(0, (o - 1) * stride + window - a)
                               for o, a in zip(outs, v.shape[1:3])] + [(0, 0)],
                constant_values=-jnp.inf)
    for axis, out in ((1, outs[0]), (2, outs[1])):
      parts = [jax.lax.slice_in_dim(v, k, k + (out - 1) * stride + 1, stride, axis=axis)
               for k in range(window)]
      v = functools.reduce(jnp.maximum, parts)
    return v

  pool = functools.partial(max_pool_floor if floor else max_pool_ceil,
                           window=window, stride=stride)
  np.testing.assert_array_equal(pool(x), formula(x))
  cotangent = jnp.asarray(rng.standard_normal(formula(x).shape), jnp.float32)
  got = jax.grad(lambda v: jnp.sum(pool(v) * cotangent))(x)
  want = jax.grad(lambda v: jnp.sum(formula(v) * cotangent))(x)
  np.testing.assert_array_equal(got, want)


def test_model_is_the_same_function_with_every_conv_impl():
  x = jnp.asarray(np.random.default_rng(3).uniform(-2, 2, (2, 67, 59, 3)), jnp.float32)
  base = SPPNet(width_multiplier=0.2, fc_dim=16, num_classes=5, initializer='he')
  params = base.init(jax.random.key(0), x, train=False)['params']
  outputs = {}
  for impl in ('xla', 'im2col', 'mixed', 'auto'):
    model = base.clone(conv_impl=impl)
    loss = lambda p: jnp.sum(jnp.sin(model.apply({'params': p}, x, train=False)))
    outputs[impl] = jax.jit(jax.value_and_grad(loss))(params)
  for impl in ('im2col', 'mixed', 'auto'):
    np.testing.assert_allclose(outputs[impl][0], outputs['xla'][0], rtol=1e-4)
    for got, want in zip(jax.tree.leaves(outputs[impl][1]),
                         jax.tree.leaves(outputs['xla'][1])):
      np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-5)


def test_auto_follows_the_cpu_convolution_flag(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=1')
  assert not runtime.cpu_convolutions_use_eigen()
  monkeypatch.setenv('XLA_FLAGS', runtime.CPU_CONV_XLA_FLAG)
  assert runtime.cpu_convolutions_use_eigen()
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_experimental_ynn_fusion_type='
                     'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,'
                     'LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION')
  assert not runtime.cpu_convolutions_use_eigen()
