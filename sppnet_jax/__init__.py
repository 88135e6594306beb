"""sppnet_jax: ZFNet and SPP-net (He et al., 2014) in JAX/Flax.

The public API: exact spatial pyramid pooling and the paper's networks (ZF-5,
Convnet*-5, Overfeat-5, Overfeat-7: `SPPNet(architecture='overfeat7')`, the
no-SPP `NoSPPNet`, ZF-5's `ZFNet`), whose stages (`features`, `pool5`, `head`)
can be run one at a time; and trained models from Python:
`load_classifier(path)` (classification/api.py), `load_detector(path)` and
`draw(image, result)` (detection/inference/image_detector.py). Those three are
imported on first use, so that `import sppnet_jax` stays as light as jax and
flax.
"""

import importlib

from sppnet_jax.core.layers import LocalResponseNorm
from sppnet_jax.core.roi_spp import roi_spatial_pyramid_pool
from sppnet_jax.core.spp import spatial_pyramid_pool, spp_output_dim
from sppnet_jax.core.zf5 import NoSPPNet, SPPNet, ZFNet, normalize_images

# name -> (module, attribute), imported on first access.
_LAZY = {
    'load_classifier': ('sppnet_jax.classification.api', 'load_classifier'),
    'load_detector': ('sppnet_jax.detection.trained', 'load_image_detector'),
    'draw': ('sppnet_jax.detection.inference.image_detector', 'draw'),
}

__all__ = ['SPPNet', 'NoSPPNet', 'ZFNet', 'LocalResponseNorm',
           'normalize_images', 'spatial_pyramid_pool',
           'roi_spatial_pyramid_pool', 'spp_output_dim', *_LAZY]
__version__ = '0.2.0'


def __getattr__(name: str):
  if name not in _LAZY:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  module, attribute = _LAZY[name]
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value  # the module's own attribute from now on
  return value


def __dir__():
  return sorted(set(globals()) | set(_LAZY))
