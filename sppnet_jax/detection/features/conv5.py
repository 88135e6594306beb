"""conv5 of a whole image at several scales (the paper's section 4: the
feature maps are computed once per image and scale, then every region
proposal is pooled from them).

Each scale resizes the image so that its short side is s, each side rounded to
a multiple of `step` (the shape buckets of the full-image eval protocol), so
the network compiles once per bucket, not once per image. The resize is
`resize.resize_to_uint8` (TensorFlow's bilinear formula in jax.numpy), the
one the exported detector runs in its graph (`inference/export.py`).
"""

import dataclasses
from typing import Sequence

import jax
import numpy as np

from sppnet_jax.core.data import image_ops
from sppnet_jax.core.zf5 import normalize_images
from sppnet_jax.detection.features import resize


@dataclasses.dataclass(frozen=True)
class ScaledMap:
  """conv5 (h, w, C) of the image resized by (factor_y, factor_x)."""
  conv5: jax.Array
  factor_y: float
  factor_x: float


def resize_to_scale(image: np.ndarray, scale: int, step: int) -> jax.Array:
  """uint8 (H, W, 3) -> the image with its short side at `scale`, each side a
  multiple of `step` (`image_ops.full_image_size`): `resize.resize_to_uint8`
  of the image zero-padded to `resize.padded_side`s, uint8. Training (the
  end-to-end batches) and test time resize with this one function."""
  height, width = image.shape[:2]
  padded = np.pad(image, ((0, resize.padded_side(height) - height),
                          (0, resize.padded_side(width) - width), (0, 0)))
  return resize.resize_to_uint8_jitted(
      padded, np.int32(height), np.int32(width),
      image_ops.full_image_size(height, width, scale, step))


class MultiScaleConv5:
  """conv5 maps of whole images at `scales` (short sides) with one model."""

  def __init__(self, model, params, scales: Sequence[int] = (688,),
               step: int = 32):
    self.model, self.params = model, params
    self.scales, self.step = tuple(scales), step
    self._features = jax.jit(self.conv5_of_image)

  def conv5_of_image(self, params, images):
    """conv5 (h, w, C) of the first of uint8 (N, H, W, 3) images
    (traceable)."""
    return self.model.apply({'params': params},
                            normalize_images(images, self.model.dtype),
                            method='features')[0]

  def resized_shape(self, height: int, width: int,
                    scale: int) -> tuple[int, int]:
    """The (height, width) an image is resized to for `scale`."""
    return image_ops.full_image_size(height, width, scale, self.step)

  def resized(self, image: np.ndarray) -> list[jax.Array]:
    """uint8 (H, W, 3) -> the image at every scale (`resize_to_scale`)."""
    return [resize_to_scale(image, scale, self.step) for scale in self.scales]

  def __call__(self, image: np.ndarray) -> list[ScaledMap]:
    height, width = image.shape[:2]
    return [ScaledMap(self._features(self.params, resized[None]),
                      resized.shape[0] / height, resized.shape[1] / width)
            for resized in self.resized(image)]
