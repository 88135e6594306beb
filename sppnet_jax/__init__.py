"""sppnet_jax: ZFNet and SPP-net (He et al., 2014) in JAX/Flax.

The public API: exact spatial pyramid pooling and the paper's networks (ZF-5,
Convnet*-5, Overfeat-5, Overfeat-7: `SPPNet(architecture='overfeat7')`, the
no-SPP `NoSPPNet`, ZF-5's `ZFNet`), whose stages (`features`, `pool5`, `head`)
can be run one at a time.
"""

from sppnet_jax.core.layers import LocalResponseNorm
from sppnet_jax.core.roi_spp import roi_spatial_pyramid_pool
from sppnet_jax.core.spp import spatial_pyramid_pool, spp_output_dim
from sppnet_jax.core.zf5 import NoSPPNet, SPPNet, ZFNet, normalize_images

__all__ = ['SPPNet', 'NoSPPNet', 'ZFNet', 'LocalResponseNorm', 'normalize_images',
           'spatial_pyramid_pool', 'roi_spatial_pyramid_pool', 'spp_output_dim']
__version__ = '0.2.0'
