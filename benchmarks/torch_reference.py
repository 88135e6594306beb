"""A PyTorch reference of the identical networks (the paper's four, with and
without SPP), for benchmarks only.

The layers are read from `sppnet_jax.core.architectures` (the one table the
Flax model is built from): each convolution with its kernel, stride, zero
padding and channels (scaled as `zf5.channels` scales them), ReLU, then the
within-channel LRN where the table puts one (local size 3, alpha 5e-5, beta
0.75, the 3x3 mean divides by 9 with zero padding); max pooling in Caffe's
ceil mode (`ceil_mode=True`: with no padding the same windows as Caffe's rule)
or floor mode (Overfeat's pool1). pool5 is the architecture's fixed baseline
pool (no-SPP) or spatial pyramid pooling with the exact bin rule
(`F.adaptive_max_pool2d`, levels 6,3,2,1); then fc6/fc7 (ReLU, dropout 0.5),
fc8; softmax cross-entropy; SGD with momentum and weight decay on weights only.

The layout is PyTorch's native NCHW, so each pyramid level flattens in (channel,
row, column) order; `load_flax_params` permutes fc6's rows accordingly, so that a
model loaded from Flax parameters computes the same function as the Flax model
(tests/classification/test_torch_reference.py checks that for every network).

PyTorch is a benchmark-only dependency (requirements-bench.txt); nothing in
`sppnet_jax` imports this file.
"""

import torch
import torch.nn.functional as F
from torch import nn

from sppnet_jax.core import architectures
from sppnet_jax.core.zf5 import channels as scaled_channels

MODELS = ('sppnet', 'nospp', 'zfnet')  # zfnet: ZF-5's no-SPP baseline


class WithinChannelLRN(nn.Module):
  """y = x / (k + alpha * mean_{size x size}(x^2))^beta, zero-padded, / size^2."""

  def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75,
               k: float = 1.0):
    super().__init__()
    self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

  def forward(self, x):
    mean = F.avg_pool2d(x * x, self.size, stride=1, padding=self.size // 2,
                        count_include_pad=True)
    return x * (self.k + self.alpha * mean).pow(-self.beta)


class PaperNet(nn.Module):
  """One of the paper's trunks (`architecture`) with a no-SPP (fixed pool5) or
  SPP-net (pyramid) head; NCHW input. Parameters are named as the Flax
  model's (conv1..convN, fc6..fc8)."""

  def __init__(self, model: str = 'sppnet', num_classes: int = 1000,
               spp_levels=(6, 3, 2, 1), fc_dim: int = 4096,
               dropout_rate: float = 0.5, width_multiplier: float = 1.0,
               architecture: str = 'zf5'):
    super().__init__()
    if model not in MODELS:
      raise ValueError(f'unknown model {model!r}: one of {MODELS}')
    if model == 'zfnet':
      model, architecture = 'nospp', 'zf5'
    self.model, self.spp_levels = model, tuple(spp_levels)
    self.table = architectures.get(architecture)
    cin = 3
    for layer in self.table.conv_layers:
      cout = scaled_channels(layer, width_multiplier)
      setattr(self, layer.name, nn.Conv2d(cin, cout, layer.kernel,
                                          stride=layer.stride,
                                          padding=layer.padding))
      cin = cout
    self.last_channels = cin
    self.lrn = WithinChannelLRN()
    cells = sum(n * n for n in self.spp_levels) if model == 'sppnet' else 36
    self.fc6 = nn.Linear(cin * cells, fc_dim)
    self.fc7 = nn.Linear(fc_dim, fc_dim)
    self.fc8 = nn.Linear(fc_dim, num_classes)
    self.dropout = nn.Dropout(dropout_rate)
    for module in self.modules():
      if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.zeros_(module.bias)

  def features(self, x):
    for layer in self.table.layers:
      if layer.kind == 'conv':
        x = F.relu(getattr(self, layer.name)(x))
        if layer.lrn:
          x = self.lrn(x)
      else:
        x = F.max_pool2d(x, layer.kernel, layer.stride, ceil_mode=layer.ceil)
    return x

  def pool5(self, x):
    if self.model == 'nospp':
      kernel, stride = self.table.baseline_pool
      return torch.flatten(F.max_pool2d(x, kernel, stride, ceil_mode=True), 1)
    return torch.cat([torch.flatten(F.adaptive_max_pool2d(x, n), 1)
                      for n in self.spp_levels], dim=1)

  def forward(self, x):
    x = self.pool5(self.features(x))
    x = self.dropout(F.relu(self.fc6(x)))
    x = self.dropout(F.relu(self.fc7(x)))
    return self.fc8(x)


MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def normalize(images_uint8_nchw):
  mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
  std = torch.tensor(STDDEV_RGB).view(1, 3, 1, 1)
  return (images_uint8_nchw.float() - mean) / std


def create_optimizer(model: nn.Module, lr: float = 0.01, momentum: float = 0.9,
                     weight_decay: float = 1e-4) -> torch.optim.Optimizer:
  """SGD with momentum; L2 weight decay on weights only (as sppnet_jax.optim)."""
  weights = [p for n, p in model.named_parameters() if not n.endswith('bias')]
  biases = [p for n, p in model.named_parameters() if n.endswith('bias')]
  return torch.optim.SGD([{'params': weights, 'weight_decay': weight_decay},
                          {'params': biases, 'weight_decay': 0.0}],
                         lr=lr, momentum=momentum, foreach=True)


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer):
  """(uint8 NCHW images, int64 labels) -> loss: forward, backward, SGD update."""

  def step(images, labels):
    optimizer.zero_grad(set_to_none=True)
    logits = model(normalize(images))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    return loss

  return step


def make_eval_step(model: nn.Module):
  """(uint8 NCHW images, labels) -> (loss sum, top-1 count) without gradients."""

  def step(images, labels):
    with torch.no_grad():
      logits = model(normalize(images))
      loss = F.cross_entropy(logits, labels, reduction='sum')
      return loss, (logits.argmax(-1) == labels).sum()

  return step


def load_flax_params(model: PaperNet, params) -> None:
  """Copies a Flax parameter tree of the same network (HWIO kernels, (in, out)
  dense kernels, NHWC flattening) into `model` (OIHW, (out, in), NCHW
  flattening)."""
  import numpy as np

  def put(dst, value):
    with torch.no_grad():
      dst.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(value, np.float32))))

  for layer in model.table.conv_layers:
    conv = getattr(model, layer.name)
    put(conv.weight, np.transpose(np.asarray(params[layer.name]['kernel']),
                                  (3, 2, 0, 1)))
    put(conv.bias, params[layer.name]['bias'])
  channels = model.last_channels
  grids = model.spp_levels if model.model == 'sppnet' else (6,)
  kernel = np.asarray(params['fc6']['kernel'])  # (features, out), NHWC order.
  rows, start = [], 0
  for n in grids:  # Flax row index (h, w, c) -> torch row index (c, h, w).
    block = kernel[start:start + n * n * channels].reshape(n, n, channels, -1)
    rows.append(np.transpose(block, (2, 0, 1, 3)).reshape(n * n * channels, -1))
    start += n * n * channels
  put(model.fc6.weight, np.concatenate(rows).T)
  put(model.fc6.bias, params['fc6']['bias'])
  for name in ('fc7', 'fc8'):
    put(getattr(model, name).weight, np.asarray(params[name]['kernel']).T)
    put(getattr(model, name).bias, params[name]['bias'])
