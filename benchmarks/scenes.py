"""Photo-like 500x375 test scenes, drawn (no download) for the detection
benchmarks: smooth light-and-shade and colour fields at several scales, 40..120
small clutter shapes, then 4..12 objects (ellipses, rotated rectangles,
polygons), each with its own colour, shading, fine texture and sometimes
stripes, and sensor grain over all."""

import cv2
import numpy as np


def smooth_field(rng, cells: int, h: int, w: int,
                 channels: int = 3) -> np.ndarray:
  """(h, w, channels) float32 noise of about `cells` blobs along the short
  side; one channel is broadcast to grey."""
  ch, cw = cells, max(1, cells * w // h)
  field = rng.normal(0, 1, (ch + 1, cw + 1, channels)).astype(np.float32)
  field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
  return field.reshape(h, w, channels)


def scene(rng, h: int = 375, w: int = 500) -> np.ndarray:
  """A photo-like uint8 RGB image with a few objects: mostly light and shade
  (grey fields), some colour, clutter at several scales."""
  image = (rng.uniform(60, 190, 3).astype(np.float32)
           + 50 * smooth_field(rng, 2, h, w, 1)
           + 15 * smooth_field(rng, 4, h, w)
           + 12 * smooth_field(rng, 30, h, w, 1))
  num_objects = int(rng.integers(4, 13))
  num_clutter = int(rng.integers(40, 120))
  for index in range(num_clutter + num_objects):  # small clutter first
    largest = 12 if index < num_clutter else 3
    mask = np.zeros((h, w), np.uint8)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(4, h / largest), rng.uniform(4, w / largest)
    kind = rng.integers(0, 3)
    if kind == 0:
      cv2.ellipse(mask, (int(cx), int(cy)), (int(rx), int(ry)),
                  float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
      corners = cv2.boxPoints(((cx, cy), (2 * rx, 2 * ry),
                               float(rng.uniform(0, 90))))
      cv2.fillPoly(mask, [corners.astype(np.int32)], 1)
    else:
      angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
      radii = rng.uniform(0.5, 1.0, angles.size)
      points = np.stack([cx + rx * radii * np.cos(angles),
                         cy + ry * radii * np.sin(angles)], 1)
      cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    texture = colour * (1 + 0.25 * smooth_field(rng, 3, h, w, 1)) + (
        10 * smooth_field(rng, 20, h, w, 1))
    if rng.random() < 0.3:
      period = rng.uniform(4, 16)
      stripes = np.sin(np.arange(w) * 2 * np.pi / period)[None, :, None]
      texture += 30 * stripes.astype(np.float32)
    inside = mask.astype(bool)
    image[inside] = texture[inside]
  image += rng.normal(0, 6, image.shape).astype(np.float32)
  return np.clip(image, 0, 255).astype(np.uint8)
