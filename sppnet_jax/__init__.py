"""sppnet_jax: ZFNet and SPP-net (He et al., 2014) in JAX/Flax."""

from sppnet_jax.models import SPPNet, ZFNet, LocalResponseNorm, normalize_images
from sppnet_jax.spp import spatial_pyramid_pool

__all__ = ['SPPNet', 'ZFNet', 'LocalResponseNorm', 'normalize_images',
           'spatial_pyramid_pool']
__version__ = '0.1.0'
