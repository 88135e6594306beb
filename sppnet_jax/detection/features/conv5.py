"""conv5 of a whole image at several scales (the paper's section 4: the
feature maps are computed once per image and scale, then every region
proposal is pooled from them).

Each scale resizes the image so that its short side is s, each side rounded to
a multiple of `step` (the shape buckets of the full-image eval protocol), so
the network compiles once per bucket, not once per image.
"""

import dataclasses
from typing import Sequence

import jax
import numpy as np

from sppnet_jax.core.data import image_ops
from sppnet_jax.core.zf5 import normalize_images


@dataclasses.dataclass(frozen=True)
class ScaledMap:
  """conv5 (h, w, C) of the image resized by (factor_y, factor_x)."""
  conv5: jax.Array
  factor_y: float
  factor_x: float


def resize_to_scale(image: np.ndarray, scale: int, step: int,
                    antialias: bool = False) -> np.ndarray:
  """uint8 (H, W, 3) -> the image with its short side at `scale`, as the eval
  protocols' full-image views resize it (bilinear, each side a multiple of
  `step`, `image_ops.full_image_size`), uint8."""
  height, width = image.shape[:2]
  shape = image_ops.full_image_size(height, width, scale, step)
  return image_ops.round_to_uint8(image_ops.resize_bilinear(
      image, shape, antialias)).numpy()


class MultiScaleConv5:
  """conv5 maps of whole images at `scales` (short sides) with one model."""

  def __init__(self, model, params, scales: Sequence[int] = (688,),
               step: int = 32, antialias: bool = False):
    self.model, self.params = model, params
    self.scales, self.step, self.antialias = tuple(scales), step, antialias

    def conv5_of_image(params, images):
      return model.apply({'params': params}, normalize_images(images, model.dtype),
                         method='features')[0]

    self._features = jax.jit(conv5_of_image)

  def resized_shape(self, height: int, width: int,
                    scale: int) -> tuple[int, int]:
    """The (height, width) an image is resized to for `scale`."""
    return image_ops.full_image_size(height, width, scale, self.step)

  def resized(self, image: np.ndarray) -> list[np.ndarray]:
    """uint8 (H, W, 3) -> the image at every scale, as the eval protocols'
    full-image views resize it (bilinear, each side a multiple of `step`)."""
    return [resize_to_scale(image, scale, self.step, self.antialias)
            for scale in self.scales]

  def __call__(self, image: np.ndarray) -> list[ScaledMap]:
    height, width = image.shape[:2]
    return [ScaledMap(self._features(self.params, resized[None]),
                      resized.shape[0] / height, resized.shape[1] / width)
            for resized in self.resized(image)]
