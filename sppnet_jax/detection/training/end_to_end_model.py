"""The end-to-end detector and its multi-task loss (Fast R-CNN's section 2,
on the SPP-net backbone and its exact region pyramid).

Forward (`forward`): conv1-conv5 of every (padded) image of the step, each
region's conv5 cells pooled with `roi_spatial_pyramid_pool` (the batch form:
all images' maps, an image index per region), fc6 and fc7 (ReLU, dropout
when training), then two sibling outputs of fc7: fc8, the class scores
(classes + background, output 0 background) and `bbox_pred`, class-specific
box deltas (K x 4, the dataset's classes only: background has none). The
region pyramid is differentiable, so the gradient reaches the conv layers
through it (to the arg-max cell of each bin).

Parameters: the backbone's (conv1..conv5, fc6, fc7) with the detector's new
fc8 (`backbone.detection_params`: N(0, 0.01), zero bias) and `bbox_pred`
(N(0, 0.001), zero bias: Fast R-CNN's initialisations).

Loss (`region_losses`, averaged over the step's valid regions):
  L = CE(softmax(fc8), label) + lambda [label >= 1] sum_4 smooth_L1(d - t)
with d the deltas of the region's true class, t its target
(`image_batches`: R-CNN's deltas divided by fixed stds, zero means), and
smooth_L1(x) = 0.5 x^2 if |x| < 1 else |x| - 0.5. Fast R-CNN normalises the
box term by the number of regions too (its released code's outside weights
1 / R), as here.

Which layers learn (`train_layers`): 'fc6' (and up: fc6, fc7, fc8,
bbox_pred; the conv layers frozen, the paper's setting), 'conv3' (conv3 and
up: Fast R-CNN's default), 'conv2', 'all'. Frozen layers get no update and no
weight decay (`trainable_labels` feeds optax's masking); with 'fc6' conv5 is
also cut from the gradient (`stop_gradient`), so no backward pass runs
through the conv layers at all.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sppnet_jax.core.roi_spp import roi_spatial_pyramid_pool
from sppnet_jax.core.train_state import topk_correct
from sppnet_jax.core.zf5 import normalize_images
from sppnet_jax.detection.backbone import detection_params
from sppnet_jax.detection.config import TRAIN_LAYERS
from sppnet_jax.errors import ConfigError

BOX_LAYER = 'bbox_pred'
BOX_STDDEV = 0.001  # Fast R-CNN's N(0, 0.001) for the box regression layer


def init_params(backbone, num_classes: int, key: jax.Array) -> dict:
  """The backbone's parameters with a new fc8 (classes + 1) and bbox_pred
  (fc_dim -> 4 num_classes), as NumPy."""
  fc8_key, box_key = jax.random.split(key)
  params = detection_params(backbone, num_classes, fc8_key)
  fc_dim = params['fc8']['kernel'].shape[0]
  kernel = BOX_STDDEV * jax.random.normal(box_key, (fc_dim, 4 * num_classes),
                                          jnp.float32)
  params[BOX_LAYER] = {'kernel': np.asarray(kernel),
                       'bias': np.zeros((4 * num_classes,), np.float32)}
  return params


def network_params(params: dict) -> dict:
  """The parameters the backbone's network takes (all but bbox_pred)."""
  return {k: v for k, v in params.items() if k != BOX_LAYER}


def frozen_layers(train_layers: str, conv_names) -> tuple[str, ...]:
  """The conv layers (of `conv_names`, in order) that do not learn."""
  if train_layers not in TRAIN_LAYERS:
    raise ConfigError(f'train_layers={train_layers!r} is not one of '
                      f'{TRAIN_LAYERS}.')
  conv_names = tuple(conv_names)
  if train_layers == 'fc6':
    return conv_names
  if train_layers == 'all':
    return ()
  return conv_names[:conv_names.index(train_layers)]


def trainable_labels(params: dict, frozen: tuple[str, ...]) -> dict:
  """'frozen' for every leaf of a frozen layer, else 'train'."""
  return {layer: jax.tree.map(
      lambda _, f=layer in frozen: 'frozen' if f else 'train', value)
          for layer, value in params.items()}


def _fc7(module, pooled, train: bool):
  """pool5 rows -> fc7 (ReLU; dropout when training, as `Network.head`)."""
  v = jax.nn.relu(module.fc6(pooled))
  v = module.Dropout_0(v, deterministic=not train)
  v = jax.nn.relu(module.fc7(v))
  return module.Dropout_1(v, deterministic=not train)


def fc7_rows(model, net: dict, pooled, *, train: bool, keys=None):
  """fc7 of pool5 rows; when training, each row's dropout masks drawn from
  its own key (so that a batch split over devices draws the same masks)."""
  if not train:
    return model.apply({'params': net}, pooled, False, method=_fc7)
  return jax.vmap(lambda v, key: model.apply(
      {'params': net}, v[None], True, method=_fc7,
      rngs={'dropout': key})[0])(pooled, keys)


def _fc8(module, fc7):
  return module.fc8(fc7)


def _at_least_float32(x):
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def forward(model, params: dict, images, cells, valid, *, train: bool,
            keys=None, freeze_conv: bool = False):
  """(N, H, W, 3) uint8 images and their (N, R, 4) conv5 cells (`valid`
  (N, R)) -> logits (N R, K + 1) and deltas (N R, K, 4), float32 (float64
  for a float64 model), rows
  image by image. `keys`: (N R,) dropout keys when training.
  `freeze_conv`: conv5 is cut from the gradient."""
  net = network_params(params)
  num_images, num_regions = cells.shape[:2]
  conv5 = model.apply({'params': net}, normalize_images(images, model.dtype),
                      method='features')
  if freeze_conv:
    conv5 = jax.lax.stop_gradient(conv5)
  image_index = jnp.repeat(jnp.arange(num_images, dtype=jnp.int32),
                           num_regions)
  pooled = roi_spatial_pyramid_pool(
      conv5, cells.reshape(-1, 4), tuple(model.spp_levels),
      valid=valid.reshape(-1), image_index=image_index)
  fc7 = fc7_rows(model, net, pooled, train=train, keys=keys)
  logits = model.apply({'params': net}, fc7, method=_fc8)
  box = params[BOX_LAYER]
  deltas = (fc7 @ box['kernel'].astype(fc7.dtype)
            + box['bias'].astype(fc7.dtype))
  return (_at_least_float32(logits),
          _at_least_float32(deltas).reshape(deltas.shape[0], -1, 4))


def smooth_l1(x):
  """0.5 x^2 where |x| < 1, |x| - 0.5 elsewhere (elementwise)."""
  ax = jnp.abs(x)
  return jnp.where(ax < 1, 0.5 * x * x, ax - 0.5)


def region_losses(logits, deltas, labels, targets,
                  box_loss_weight: float) -> dict:
  """Per region: 'loss' = 'cls' + box_loss_weight * 'box' (module
  docstring), 'top1', 'top5' and 'foreground' (1.0 for labels >= 1).
  logits (M, K + 1), deltas (M, K, 4), labels (M,), targets (M, 4)."""
  labels = labels.reshape(-1)
  targets = targets.reshape(-1, 4)
  # optax's, not train_state.cross_entropy: that one computes in float32,
  # and a float64 model keeps float64 here (the gradient tests need it).
  cls = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  foreground = (labels > 0).astype(jnp.float32)
  own = jnp.take_along_axis(
      deltas, jnp.maximum(labels - 1, 0)[:, None, None], axis=1)[:, 0]
  box = foreground * smooth_l1(own - targets).sum(-1)
  return dict(loss=cls + box_loss_weight * box, cls=cls, box=box,
              top1=topk_correct(logits, labels, 1),
              top5=topk_correct(logits, labels, 5), foreground=foreground)


def mean_loss(outputs: dict, valid) -> jnp.ndarray:
  """The step's objective: the mean of 'loss' over the valid regions."""
  valid = valid.reshape(-1)
  total = jnp.where(valid, outputs['loss'], 0.0).sum()
  return total / jnp.maximum(valid.sum(), 1)


def batch_loss(model, params, batch: dict, *, train: bool, keys=None,
               freeze_conv: bool = False, box_loss_weight: float = 1.0):
  """(the step's objective, per-region outputs) of a batch of `assemble`'s
  arrays."""
  logits, deltas = forward(model, params, batch['image'], batch['cells'],
                           batch['valid'], train=train, keys=keys,
                           freeze_conv=freeze_conv)
  outputs = region_losses(logits, deltas, batch['label'], batch['target'],
                          box_loss_weight)
  return mean_loss(outputs, batch['valid']), outputs
