"""The paper's four networks (Table 1) as layer tables, and the geometry read
from a table: map sizes, the smallest input, and where a cell of the last map
looks in the image (the paper's Appendix A).

A table lists, in order, the layers up to the last convolution that change the
spatial size or the channels; LRN is a flag of the convolution it follows. The
networks (`core.zf5`), the map sizes, FLOP counts and, for detection, the
projection of image windows onto the last map's cells all read these tables,
so a network's geometry is written once.

The paper gives each layer's filters, strides and pooling and the map size after
it at 224; it says the paddings were "adjusted to produce the expected output
feature map size". Where it leaves a choice, the tables take the one the map
sizes force (c = conv, p = pool, sizes at 224; a floor-mode k/s pool gives
floor((a - k) / s) + 1, Caffe's ceil mode ceil((a - k) / s) + 1):

* ZF-5: the authors' released definition, unchanged: c 110 -> p 55 -> c 26
  -> p 13 (their conv2 has no padding; the paper's table prints 27 after
  conv2, the authors' definition gives 26, pooled to the table's 13).
* Convnet*-5 (Krizhevsky's network, pools after conv2 and conv3, no groups):
  conv1 11/4 to 55 needs (224 + 2p - 11) // 4 + 1 = 55, i.e. 216 <= 213 + 2p
  < 220: p = 2 (the smallest; 3 also fits). conv2 5/1 then pool 3/2 to 27:
  ceil((51 + 2p - 3) / 2) + 1 = 27 only for p = 2 (p = 1 gives 26). conv3 3/1
  then pool 3/2 to 13: ceil((25 + 2p - 3) / 2) + 1 = 13 only for p = 1; conv4
  and conv5 keep 13 only with p = 1. Total stride 4 * 2 * 2 = 16. LRN after
  conv1 and conv2, as Krizhevsky's.
* Overfeat-5/7 (Overfeat's fast model as Chatfield et al.'s CNN-S): conv1
  7/2 gives 109 + p at 224. A 3/3 pool to 36 needs 106 <= a <= 108 in ceil
  mode, which no p >= 0 gives, and 108 <= a <= 110 in floor mode: pool1 is a
  floor-mode pool and p = 0 (CNN-S's padding; the smallest). conv2 5/1 then
  pool 2/2 to 18: the conv gives 32 + 2p, the pool 18 for 35 <= 32 + 2p <= 36
  (ceil) or 36..37 (floor): p = 2 either way; pool2 keeps Caffe's ceil mode,
  the project's rule wherever it gives the stated size. conv3-conv7 keep 18
  with p = 1. Total stride 2 * 3 * 2 = 12 (Appendix A). LRN after conv1 only,
  as in CNN-S (the map sizes cannot decide it).

The no-SPP baselines pool the last map to 6 x 6 at 224 with a fixed max pool
(`Architecture.baseline_pool`): 3/2 on 13 x 13, 3/3 on 18 x 18.
"""

import dataclasses
import functools

from sppnet_jax.core.windows import ceil_pool_out_size, conv_out_size
from sppnet_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Layer:
  """One layer that changes the spatial size (or the channels)."""
  name: str
  kind: str  # 'conv' (floor mode, zero padding) | 'pool' (max pooling)
  kernel: int
  stride: int
  padding: int = 0
  channels: int = 0  # output channels of a convolution at width 1.0
  lrn: bool = False  # conv: local response normalisation after its ReLU
  ceil: bool = True  # pool: Caffe's ceil mode; False: floor mode


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A network's trunk (`layers`, up to its last convolution) and the fixed
  pool (kernel, stride) of its no-SPP baseline."""
  name: str  # the config value
  title: str  # the paper's name
  layers: tuple[Layer, ...]
  baseline_pool: tuple[int, int]

  @property
  def conv_layers(self) -> tuple[Layer, ...]:
    return tuple(layer for layer in self.layers if layer.kind == 'conv')

  @property
  def last_channels(self) -> int:
    """The last convolution's channels at width 1.0 (the pyramid's depth)."""
    return self.conv_layers[-1].channels


def _conv(name, kernel, stride, padding, channels, lrn=False):
  return Layer(name, 'conv', kernel, stride, padding, channels, lrn=lrn)


def _pool(name, kernel, stride, ceil=True):
  return Layer(name, 'pool', kernel, stride, ceil=ceil)


ZF5 = Architecture('zf5', 'ZF-5', (
    _conv('conv1', 7, 2, 1, 96, lrn=True),
    _pool('pool1', 3, 2),
    _conv('conv2', 5, 2, 0, 256, lrn=True),
    _pool('pool2', 3, 2),
    _conv('conv3', 3, 1, 1, 384),
    _conv('conv4', 3, 1, 1, 384),
    _conv('conv5', 3, 1, 1, 256),
), baseline_pool=(3, 2))

CONVNET5 = Architecture('convnet5', 'Convnet*-5', (
    _conv('conv1', 11, 4, 2, 96, lrn=True),
    _conv('conv2', 5, 1, 2, 256, lrn=True),
    _pool('pool2', 3, 2),
    _conv('conv3', 3, 1, 1, 384),
    _pool('pool3', 3, 2),
    _conv('conv4', 3, 1, 1, 384),
    _conv('conv5', 3, 1, 1, 256),
), baseline_pool=(3, 2))

_OVERFEAT_START = (
    _conv('conv1', 7, 2, 0, 96, lrn=True),
    _pool('pool1', 3, 3, ceil=False),
    _conv('conv2', 5, 1, 2, 256),
    _pool('pool2', 2, 2),
)
OVERFEAT5 = Architecture('overfeat5', 'Overfeat-5', _OVERFEAT_START + tuple(
    _conv(f'conv{i}', 3, 1, 1, 512) for i in range(3, 6)), baseline_pool=(3, 3))
OVERFEAT7 = Architecture('overfeat7', 'Overfeat-7', _OVERFEAT_START + tuple(
    _conv(f'conv{i}', 3, 1, 1, 512) for i in range(3, 8)), baseline_pool=(3, 3))

ARCHITECTURES = {a.name: a for a in (ZF5, CONVNET5, OVERFEAT5, OVERFEAT7)}


def get(name: str) -> Architecture:
  """The architecture a config value names.

  Raises:
    ConfigError: an unknown name.
  """
  if name not in ARCHITECTURES:
    raise ConfigError(f'unknown architecture {name!r}: set --config.architecture '
                      f'to one of {", ".join(ARCHITECTURES)}.')
  return ARCHITECTURES[name]


HEAD_LAYERS = ('fc6', 'fc7', 'fc8')


def parameter_layers(architecture: str = 'zf5') -> tuple[str, ...]:
  """The names of the layers with parameters, input to output: the
  convolutions, then fc6, fc7 and fc8 (the top-level keys of the params)."""
  return tuple(layer.name for layer in get(architecture).conv_layers) + HEAD_LAYERS


def layers_below(architecture: str, first_trained: str) -> frozenset[str]:
  """The parameter layers before `first_trained` (those a run that trains
  from `first_trained` up keeps frozen): empty for 'conv1'.

  Raises:
    ConfigError: `first_trained` is not a parameter layer of the network.
  """
  names = parameter_layers(architecture)
  if first_trained not in names:
    raise ConfigError(
        f'config.trainable_from={first_trained!r} is not a layer of '
        f'{get(architecture).title}: set --config.trainable_from to one of '
        f'{", ".join(names)}.')
  return frozenset(names[:names.index(first_trained)])


def layer_output_size(layer: Layer, size: int) -> int:
  """The side after `layer` for an input side (< 1: no output)."""
  if layer.kind == 'pool':
    if layer.ceil:
      return ceil_pool_out_size(size, layer.kernel, layer.stride)
    return (size - layer.kernel) // layer.stride + 1
  return conv_out_size(size, layer.kernel, layer.stride, layer.padding)


def layer_sizes(input_size: int, architecture: str = 'zf5') -> dict[str, int]:
  """The side of every layer's output for an input side; 0 from the first layer
  that has no output on."""
  sizes, size = {}, input_size
  for layer in get(architecture).layers:
    size = layer_output_size(layer, size) if size >= 1 else 0
    sizes[layer.name] = max(size, 0)
  return sizes


def conv5_size(input_size: int, architecture: str = 'zf5') -> int:
  """Side of the last convolution's map for an input side (0 when the input
  is too small): the pyramid's input, called conv5 throughout the project
  whatever the depth (Overfeat-7's is conv7's)."""
  return layer_sizes(input_size, architecture)[get(architecture).layers[-1].name]


@functools.cache
def min_input_size(architecture: str = 'zf5') -> int:
  """The smallest input side for which every layer has an output."""
  return next(s for s in range(1, 1024) if conv5_size(s, architecture) >= 1)


def receptive_field_centres(architecture: str = 'zf5') -> tuple[float, int]:
  """(c, S): cell j of the last map has its receptive field centred at image
  coordinate c + S * j, in continuous pixel coordinates (pixel i spans
  [i, i + 1), its centre is i + 0.5). S is the product of the strides.

  Each layer moves the centre of its first output by ((k - 1) / 2 - p) input
  steps (pooling pads at the end only, if at all, so p = 0 there). For ZF-5:
  0.5 (pixel 0) + 2 (conv1 7/2 pad 1) + 1 * 2 (pool1 3/2) + 2 * 4 (conv2 5/2)
  + 1 * 8 (pool2 3/2) + 0 (conv3-5 3/1 pad 1) = 20.5, and S = 2 * 2 * 2 * 2 = 16:
  cell j sees pixels centred on pixel 20 + 16 j (21 + 16 j counted from 1, the
  authors' `offset0 = 21`)."""
  centre, jump = 0.5, 1
  for layer in get(architecture).layers:
    centre += ((layer.kernel - 1) / 2 - layer.padding) * jump
    jump *= layer.stride
  return centre, jump
