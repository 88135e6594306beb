"""A generated test image for selective search."""

import cv2
import numpy as np


def scene(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
  """uint8 RGB: a smooth random colour field, a few flat rectangles, noise."""
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3),
                        dtype=np.uint8)
  image = cv2.resize(coarse, (width, height),
                     interpolation=cv2.INTER_CUBIC).astype(np.float32)
  for _ in range(4):
    h = int(rng.integers(height // 5, height // 2))
    w = int(rng.integers(width // 5, width // 2))
    y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    image[y:y + h, x:x + w] = rng.integers(0, 256, 3)
  image += rng.normal(0, 6, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)
