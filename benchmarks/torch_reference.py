"""A PyTorch reference of the identical ZF-5 / SPP-net, for benchmarks only.

Same geometry as ZF-5's table in `sppnet_jax.core.architectures`: conv1 7x7/2
pad 1, within-channel LRN (local size 3, alpha 5e-5, beta 0.75, the 3x3 mean divides by 9
with zero padding), Caffe ceil-mode 3x3/2 max pooling (`ceil_mode=True`: for these
sizes the same windows as Caffe's rule), conv2 5x5/2, three 3x3 pad 1 convolutions,
pool5 = fixed 3x3/2 max pool (ZFNet) or spatial pyramid pooling with the exact bin
rule (`F.adaptive_max_pool2d`, levels 6,3,2,1), fc6/fc7 (ReLU, dropout 0.5), fc8;
softmax cross-entropy; SGD with momentum and weight decay on weights only.

The layout is PyTorch's native NCHW, so each pyramid level flattens in (channel,
row, column) order; `load_flax_params` permutes fc6's rows accordingly, so that a
model loaded from Flax parameters computes the same function as the Flax model
(tests/test_torch_reference.py checks that).

PyTorch is a benchmark-only dependency (requirements-bench.txt); nothing in
`sppnet_jax` imports this file.
"""

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = (96, 256, 384, 384, 256)


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


class ZF5(nn.Module):
  """ZF-5 trunk with a ZFNet (pool5) or SPP-net (pyramid) head; NCHW input."""

  def __init__(self, model: str = 'sppnet', num_classes: int = 1000,
               spp_levels=(6, 3, 2, 1), fc_dim: int = 4096,
               dropout_rate: float = 0.5, width_multiplier: float = 1.0):
    super().__init__()
    if model not in ('sppnet', 'zfnet'):
      raise ValueError(f'unknown model {model!r}')
    self.model, self.spp_levels = model, tuple(spp_levels)
    c1, c2, c3, c4, c5 = (max(1, int(round(c * width_multiplier))) for c in CHANNELS)
    self.conv1 = nn.Conv2d(3, c1, 7, stride=2, padding=1)
    self.conv2 = nn.Conv2d(c1, c2, 5, stride=2, padding=0)
    self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
    self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
    self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
    self.lrn = WithinChannelLRN()
    features = c5 * (sum(n * n for n in self.spp_levels) if model == 'sppnet' else 36)
    self.fc6 = nn.Linear(features, fc_dim)
    self.fc7 = nn.Linear(fc_dim, fc_dim)
    self.fc8 = nn.Linear(fc_dim, num_classes)
    self.dropout = nn.Dropout(dropout_rate)
    for module in self.modules():
      if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.zeros_(module.bias)

  def pool5(self, x):
    if self.model == 'zfnet':
      return torch.flatten(F.max_pool2d(x, 3, 2, ceil_mode=True), 1)
    return torch.cat([torch.flatten(F.adaptive_max_pool2d(x, n), 1)
                      for n in self.spp_levels], dim=1)

  def forward(self, x):
    x = F.max_pool2d(self.lrn(F.relu(self.conv1(x))), 3, 2, ceil_mode=True)
    x = F.max_pool2d(self.lrn(F.relu(self.conv2(x))), 3, 2, ceil_mode=True)
    x = F.relu(self.conv3(x))
    x = F.relu(self.conv4(x))
    x = F.relu(self.conv5(x))
    x = self.pool5(x)
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


def load_flax_params(model: ZF5, params) -> None:
  """Copies a Flax ZF-5 parameter tree (HWIO kernels, (in, out) dense kernels,
  NHWC flattening) into `model` (OIHW, (out, in), NCHW flattening)."""
  import numpy as np

  def put(dst, value):
    with torch.no_grad():
      dst.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(value, np.float32))))

  for i in range(1, 6):
    conv = getattr(model, f'conv{i}')
    put(conv.weight, np.transpose(np.asarray(params[f'conv{i}']['kernel']), (3, 2, 0, 1)))
    put(conv.bias, params[f'conv{i}']['bias'])
  channels = model.conv5.out_channels
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
