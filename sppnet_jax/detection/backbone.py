"""The classification SPP-net a detector starts from (the paper's section 4):
its conv1-conv5 compute the shared feature maps (frozen: the paper does not
fine-tune them), its fc6/fc7 start the fine-tuned layers, and a new fc8 scores
the detection classes plus background.

`ensure_backbone(config)` is `load_backbone` of the recipe's backbone
(`backbone_at`, shared with transfer runs), which it first trains with the
recipe's classification recipe when that is allowed and there is none. `load_backbone(path)` restores the best checkpoint of a classification workdir
(or the step folder `path` names) with the config it was trained with, read
from the checkpoint itself. Only an SPP-net fits: ZFNet's fc6 takes a fixed
6 x 6 pool5, not the pyramid of a region: a one-line CheckpointError. The
detector pools regions with the backbone's own pyramid. `detection_params`
builds the detector's parameters: every layer copied, fc8 replaced by a
(fc_dim, classes + 1) layer drawn from N(0, 0.01) with zero bias (the
authors' initialisation); `detector_model` is the network they fit.
"""

from __future__ import annotations

import dataclasses
import os
import runpy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from sppnet_jax.errors import (CheckpointError, CheckpointNotFoundError,
                               ConfigError)

FC8_STDDEV = 0.01  # the authors' N(0, 0.01) for the new layer


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A restored classification SPP-net."""
  config: ml_collections.ConfigDict  # its classification config
  model: object  # the classification SPPNet
  params: dict
  step: int
  path: str  # the step folder restored
  class_names: tuple[str, ...]


def load_backbone(path: str) -> Backbone:
  """Restores the classification SPP-net at `path`: a workdir (its best
  checkpoint, else its latest) or a step folder (WORKDIR/best/1000).

  Raises:
    CheckpointNotFoundError: nothing to restore at `path`.
    CheckpointError: not an SPP-net (a ZFNet).
  """
  from sppnet_jax.classification import saved_run  # pylint: disable=g-import-not-at-top
  config, _ = saved_run.saved_config_at(path)
  where = config.eval.checkpoint_path
  if config.model != 'sppnet':
    raise CheckpointError(
        f'the backbone at {where} is a {config.model}: detection pools each '
        'region with spatial pyramid pooling into fc6, which only an SPP-net '
        'takes; train one (e.g. configs/classification/sppnet_mult.py).')
  restored = saved_run.restore_saved(config)
  params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)),
                        restored.params)
  return Backbone(config=restored.config, model=restored.model, params=params,
                  step=restored.step, path=where,
                  class_names=restored.class_names)


def detector_model(backbone: Backbone, num_classes: int):
  """The backbone's network with (classes + background) outputs."""
  return backbone.model.clone(num_classes=num_classes + 1)


def detection_params(backbone: Backbone, num_classes: int,
                     key: jax.Array) -> dict:
  """The backbone's parameters with a new fc8 for `num_classes` detection
  classes plus background (output 0), N(0, 0.01) weights and zero bias."""
  params = dict(backbone.params)
  fc_dim = params['fc8']['kernel'].shape[0]
  kernel = FC8_STDDEV * jax.random.normal(key, (fc_dim, num_classes + 1),
                                          jnp.float32)
  params['fc8'] = {'kernel': np.asarray(kernel),
                   'bias': np.zeros((num_classes + 1,), np.float32)}
  return params


def ensure_backbone(config) -> Backbone:
  """The backbone checkpoint, trained first with `backbone_recipe` when the
  recipe allows it and there is none."""
  path = config.detection.backbone
  if not path:
    raise ConfigError('detection needs a classification SPP-net: set '
                      '--config.detection.backbone to its workdir.')
  return backbone_at(path, train=config.detection.train_backbone,
                     recipe=config.detection.backbone_recipe,
                     field='config.detection.backbone_recipe')


def backbone_at(path: str, *, train: bool, recipe: str,
                field: str = 'backbone_recipe') -> Backbone:
  """`load_backbone(path)`; when there is no checkpoint at `path` and
  `train`, the classification recipe file `recipe` (named `field` in the
  config) is trained in `path` first."""
  try:
    return load_backbone(path)
  except CheckpointNotFoundError:
    if not train:
      raise
  logging.info('No backbone at %s: training it first with %s.', path, recipe)
  if not os.path.isfile(recipe):
    raise ConfigError(f'{field}={recipe!r} is not a '
                      'file: run from the repository root or give its path.')
  from sppnet_jax.classification import train as train_lib  # pylint: disable=g-import-not-at-top
  classification = runpy.run_path(recipe)['get_config']()
  train_lib.train_and_evaluate(classification, path)
  return load_backbone(path)
