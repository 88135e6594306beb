"""The paper's four networks (Table 1): parameter counts against hand-computed
totals, map sizes at 224 and 180 against the table and hand arithmetic, the
receptive-field geometry, floor-mode pooling, and bad architecture names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax import NoSPPNet, SPPNet, ZFNet
from sppnet_jax.core import architectures
from sppnet_jax.core.layers import max_pool_floor
from sppnet_jax.core.zf5 import count_params
from sppnet_jax.errors import ConfigError

NETWORKS = ('zf5', 'convnet5', 'overfeat5', 'overfeat7')


def _conv(k, c_in, c_out):
  """A k x k convolution's weights and biases: k * k * c_in * c_out + c_out."""
  return k * k * c_in * c_out + c_out


def _fc(n_in, n_out):
  return n_in * n_out + n_out


# The convolutions of the paper's Table 1, typed from the table (filters,
# kernel side, the previous layer's filters as input channels).
_TRUNKS = {
    'zf5': _conv(7, 3, 96) + _conv(5, 96, 256) + _conv(3, 256, 384)
           + _conv(3, 384, 384) + _conv(3, 384, 256),
    'convnet5': _conv(11, 3, 96) + _conv(5, 96, 256) + _conv(3, 256, 384)
                + _conv(3, 384, 384) + _conv(3, 384, 256),
    'overfeat5': _conv(7, 3, 96) + _conv(5, 96, 256) + _conv(3, 256, 512)
                 + 2 * _conv(3, 512, 512),
    'overfeat7': _conv(7, 3, 96) + _conv(5, 96, 256) + _conv(3, 256, 512)
                 + 4 * _conv(3, 512, 512),
}
_LAST_CHANNELS = {'zf5': 256, 'convnet5': 256, 'overfeat5': 512, 'overfeat7': 512}


def _head(pool5_features):
  return _fc(pool5_features, 4096) + _fc(4096, 4096) + _fc(4096, 1000)


def _hand_count(network, spp):
  # SPP {6, 3, 2, 1}: 36 + 9 + 4 + 1 = 50 bins per channel; no SPP: 6 x 6.
  bins = 50 if spp else 36
  return _TRUNKS[network] + _head(bins * _LAST_CHANNELS[network])


# The totals of the arithmetic above, written out (1000 classes):
HAND_TOTALS = {  # network: (SPP, no SPP)
    'zf5': (77_037_672, 62_357_608),
    'convnet5': (77_058_408, 62_378_344),
    'overfeat5': (132_268_648, 102_908_520),
    'overfeat7': (136_988_264, 107_628_136),
}


def _params(model, size=224):
  variables = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  return variables['params']


@pytest.mark.parametrize('network', NETWORKS)
def test_parameter_counts_are_the_hand_computed_ones(network):
  spp, no_spp = HAND_TOTALS[network]
  assert (_hand_count(network, True), _hand_count(network, False)) == (spp, no_spp)
  assert count_params(_params(SPPNet(architecture=network))) == spp
  assert count_params(_params(NoSPPNet(architecture=network))) == no_spp
  params = _params(SPPNet(architecture=network))
  depth = 7 if network == 'overfeat7' else 5
  assert sorted(params) == sorted([f'conv{i}' for i in range(1, depth + 1)]
                                  + ['fc6', 'fc7', 'fc8'])


def test_zfnet_is_zf5_s_no_spp_network():
  assert count_params(_params(ZFNet())) == HAND_TOTALS['zf5'][1]


# Map sides after each layer, by hand (c: floor((a + 2p - k) / s) + 1; Caffe
# ceil pool: ceil((a - k) / s) + 1; floor pool: floor((a - k) / s) + 1).
# Table 1's figures at 224: ZF-5 55 after pool1, 13 from conv3 on (the table's
# 27 after conv2 is not the authors' definition: see architectures.py);
# Convnet*-5 55, 27, 13; Overfeat 36, 18.
MAP_SIDES = {
    # 224: c1 (224+2-7)//2+1 = 110, p1 ceil(107/2)+1 = 55, c2 (55-5)//2+1 = 26,
    # p2 ceil(23/2)+1 = 13. 180: 88, 44, 20, 10.
    ('zf5', 224): dict(conv1=110, pool1=55, conv2=26, pool2=13, conv5=13),
    ('zf5', 180): dict(conv1=88, pool1=44, conv2=20, pool2=10, conv5=10),
    # 224: c1 (224+4-11)//4+1 = 55, c2 pad 2 55, p2 ceil(52/2)+1 = 27, c3 27,
    # p3 ceil(24/2)+1 = 13. 180: c1 173//4+1 = 44, 44, ceil(41/2)+1 = 22, 22,
    # ceil(19/2)+1 = 11.
    ('convnet5', 224): dict(conv1=55, conv2=55, pool2=27, conv3=27, pool3=13,
                            conv5=13),
    ('convnet5', 180): dict(conv1=44, conv2=44, pool2=22, conv3=22, pool3=11,
                            conv5=11),
    # 224: c1 (224-7)//2+1 = 109, p1 floor(106/3)+1 = 36, c2 pad 2 36,
    # p2 ceil(34/2)+1 = 18. 180: c1 173//2+1 = 87, p1 84//3+1 = 29, c2 29,
    # p2 ceil(27/2)+1 = 15.
    ('overfeat5', 224): dict(conv1=109, pool1=36, conv2=36, pool2=18, conv5=18),
    ('overfeat5', 180): dict(conv1=87, pool1=29, conv2=29, pool2=15, conv5=15),
    ('overfeat7', 224): dict(conv1=109, pool1=36, conv2=36, pool2=18, conv7=18),
    ('overfeat7', 180): dict(conv1=87, pool1=29, conv2=29, pool2=15, conv7=15),
}


@pytest.mark.parametrize('network, size', sorted(MAP_SIDES))
def test_map_sizes_at_224_and_180(network, size):
  expected = MAP_SIDES[(network, size)]
  sides = architectures.layer_sizes(size, network)
  assert {name: sides[name] for name in expected} == expected
  last = expected['conv7' if network == 'overfeat7' else 'conv5']
  assert architectures.conv5_size(size, network) == last
  # The network's own maps (shapes only, a narrow network).
  model = SPPNet(architecture=network, width_multiplier=0.1, fc_dim=8, num_classes=3)
  x = jnp.zeros((1, size, size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  conv5, state = jax.eval_shape(lambda v: model.apply(
      v, x, method='features', capture_intermediates=True), variables)
  assert conv5.shape[1:3] == (last, last)
  convs = {name: state['intermediates'][name]['__call__'][0].shape[1]
           for name in expected if name.startswith('conv')}
  assert convs == {name: side for name, side in expected.items()
                   if name.startswith('conv')}


# LRN after conv1 and conv2 (ZF-5, Convnet*-5: sides at 224 110 and 26, 55
# and 55) or after conv1 only (Overfeat, as Chatfield et al.'s CNN-S: 109).
LRN_SIDES = {'zf5': (110, 26), 'convnet5': (55, 55), 'overfeat5': (109,),
             'overfeat7': (109,)}


@pytest.mark.parametrize('network', NETWORKS)
def test_lrn_follows_the_table(network):
  model = SPPNet(architecture=network, width_multiplier=0.1, fc_dim=8, num_classes=3)
  x = jnp.zeros((1, 224, 224, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  _, state = jax.eval_shape(lambda v: model.apply(
      v, x, method='features', capture_intermediates=True), variables)
  outputs = state['intermediates']['norm']['__call__']
  assert tuple(out.shape[1] for out in outputs) == LRN_SIDES[network]


@pytest.mark.parametrize('network', ['convnet5', 'overfeat5', 'overfeat7'])
def test_no_spp_pool5_is_6x6_at_224(network):
  model = NoSPPNet(architecture=network, width_multiplier=0.1, fc_dim=8,
                   num_classes=3)
  channels = round(_LAST_CHANNELS[network] * 0.1)
  assert model.pool5_dim() == 6 * 6 * channels
  x = jnp.zeros((1, 224, 224, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  conv5 = jax.eval_shape(lambda v: model.apply(v, x, method='features'), variables)
  pooled = jax.eval_shape(lambda v, c: model.apply(v, c, method='pool5'),
                          variables, conv5)
  assert pooled.shape == (1, 6 * 6 * channels)


def test_receptive_field_centres():
  # Each layer moves the first cell's centre by ((k - 1) / 2 - p) input steps.
  # Convnet*-5: conv1 11/4 pad 2: 5 - 2 = 3 pixels; conv2 5/1 pad 2: 0; pool2
  # 3/2: 1 step of 4; conv3 pad 1: 0; pool3 3/2: 1 step of 8. S = 4 * 2 * 2.
  assert architectures.receptive_field_centres('convnet5') == (
      0.5 + 3 + 4 + 8, 16)
  # Overfeat: conv1 7/2 pad 0: 3 pixels; pool1 3/3: 1 step of 2; conv2 5/1 pad
  # 2: 0; pool2 2/2: 0.5 steps of 6; conv3-7 pad 1: 0. S = 2 * 3 * 2 = 12.
  for network in ('overfeat5', 'overfeat7'):
    assert architectures.receptive_field_centres(network) == (
        0.5 + 3 + 2 + 3, 12)


def test_floor_mode_pooling():
  # 11 wide, 3/3: floor(8 / 3) + 1 = 3 windows at 0, 3, 6; columns 9 and 10
  # are in none (ceil mode would add a fourth at 9).
  x = np.random.default_rng(0).normal(size=(2, 11, 10, 3)).astype(np.float32)
  got = np.asarray(max_pool_floor(jnp.asarray(x), 3, 3))
  starts_r, starts_c = (0, 3, 6), (0, 3, 6)
  expected = np.stack([np.stack([x[:, r:r + 3, c:c + 3].max(axis=(1, 2))
                                 for c in starts_c], 1) for r in starts_r], 1)
  np.testing.assert_array_equal(got, expected)
  assert max_pool_floor(jnp.zeros((1, 109, 87, 1)), 3, 3).shape[1:3] == (36, 29)


def test_min_input_sizes():
  # Overfeat: the last map needs pool2's input >= 1 (a 2/2 ceil pool of a
  # 1-wide map has one window), so pool1 >= 1: conv1 >= 3: (s - 7) // 2 + 1
  # >= 3 gives s >= 11. Convnet*-5: pool3 (3/2 ceil) needs >= 2 ((2 - 3) / 2
  # rounds up to 0: one window), so pool2 >= 2: conv2 = conv1 >= 4:
  # (s + 4 - 11) // 4 + 1 >= 4 gives s >= 19.
  assert architectures.min_input_size('overfeat7') == 11
  assert architectures.min_input_size('convnet5') == 19
  assert architectures.min_input_size('zf5') == 31


def test_unknown_architecture_is_a_one_line_config_error():
  message = ("unknown architecture 'vgg16': set --config.architecture to one of "
             'zf5, convnet5, overfeat5, overfeat7.')
  with pytest.raises(ConfigError) as error:
    SPPNet(architecture='vgg16').init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                                      train=False)
  assert str(error.value) == message
