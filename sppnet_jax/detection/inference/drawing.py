"""Detections drawn on their image, for `--mode=detect`: a person checks a
detector by looking at its boxes, which no mAP shows.

Each class has one fixed colour (a hue wheel walked in golden-ratio steps, so
neighbouring class indices differ strongly) for its box outline and for a
filled tag "name 0.87" above the box. Boxes are the library's (y0, x0, y1, x1)
in continuous pixel coordinates (see `boxes.py`); the outline is drawn on the
outer pixels the box covers, rows floor(y0)..ceil(y1) - 1 and likewise the
columns, so it marks exactly the box's extent.
"""

import colorsys
import math
import os
from typing import Mapping, Sequence

import cv2
import numpy as np

from sppnet_jax.detection import stage_files

_GOLDEN_RATIO_CONJUGATE = (math.sqrt(5) - 1) / 2
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(index: int) -> tuple[int, int, int]:
  """The fixed, saturated RGB colour of class `index`."""
  hue = (index * _GOLDEN_RATIO_CONJUGATE) % 1.0
  r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
  return (round(255 * r), round(255 * g), round(255 * b))


def _text_color(color) -> tuple[int, int, int]:
  """Black on light colours, white on dark ones (ITU-R BT.601 luma)."""
  r, g, b = color
  return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255,) * 3


def _pixel_span(lo: float, hi: float, size: int) -> tuple[int, int] | None:
  """First and last pixel of [lo, hi) clipped to 0..size - 1; None if empty."""
  if not (math.isfinite(lo) and math.isfinite(hi)):
    return None
  first = max(math.floor(min(max(lo, -1.0), size + 1.0)), 0)
  last = min(math.ceil(min(max(hi, -1.0), size + 1.0)) - 1, size - 1)
  return (first, last) if first <= last else None


def _draw_tag(out: np.ndarray, text: str, color, top: int, left: int,
              scale: float, thickness: int) -> None:
  """Fills a tag of `color` holding `text` just above pixel row `top` (the
  box's first row), or from row `top` down (inside the box) when there is no
  room above; it starts at column `left`, moved left as far as needed to end
  inside the image."""
  width = out.shape[1]
  (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
  pad = thickness + 1
  tag_h = text_h + baseline + 2 * pad
  tag_w = text_w + 2 * pad
  y0 = top - tag_h if top >= tag_h else top
  x0 = max(min(left, width - tag_w), 0)
  out[y0:y0 + tag_h, x0:x0 + tag_w] = color  # NumPy slicing clips
  cv2.putText(out, text, (x0 + pad, y0 + pad + text_h), _FONT, scale,
              _text_color(color), thickness, cv2.LINE_AA)


def draw_detections(image: np.ndarray, boxes, classes, scores,
                    class_names: Sequence[str] | Mapping[int, str], *,
                    line_width: int | None = None) -> np.ndarray:
  """A copy of `image` with the detections drawn on it.

  Args:
    image: uint8 RGB (H, W, 3); not modified.
    boxes: (N, 4) float (y0, x0, y1, x1), continuous pixel coordinates. Boxes
      partly outside the image are clipped, empty or fully outside ones skipped.
    classes: (N,) int indices into `class_names` (each class's colour).
    scores: (N,) float, shown with two decimals; higher scores drawn last.
    class_names: the class names, or {class index: name} of `classes`.
    line_width: outline width in pixels, drawn inwards from the box's edge;
      default max(1, round(min(H, W) / 200)).

  Returns:
    A new uint8 RGB (H, W, 3) image.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f'image must be uint8 (H, W, 3), got {image.dtype} '
                     f'{image.shape}')
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  classes = np.asarray(classes).reshape(-1)
  scores = np.asarray(scores, np.float64).reshape(-1)
  if not boxes.shape[0] == classes.shape[0] == scores.shape[0]:
    raise ValueError(f'{boxes.shape[0]} boxes, {classes.shape[0]} classes and '
                     f'{scores.shape[0]} scores')
  out = np.ascontiguousarray(image).copy()
  height, width = out.shape[:2]
  if line_width is None:
    line_width = max(1, round(min(height, width) / 200))
  line_width = max(1, int(line_width))
  scale = max(0.3, min(height, width) / 800)
  thickness = max(1, round(scale * 1.5))
  for i in np.argsort(scores, kind='stable'):  # the highest score last
    rows = _pixel_span(boxes[i, 0], boxes[i, 2], height)
    cols = _pixel_span(boxes[i, 1], boxes[i, 3], width)
    if rows is None or cols is None:
      continue
    (r0, r1), (c0, c1) = rows, cols
    color = class_color(int(classes[i]))
    w = line_width
    out[r0:min(r0 + w, r1 + 1), c0:c1 + 1] = color
    out[max(r1 - w + 1, r0):r1 + 1, c0:c1 + 1] = color
    out[r0:r1 + 1, c0:min(c0 + w, c1 + 1)] = color
    out[r0:r1 + 1, max(c1 - w + 1, c0):c1 + 1] = color
    text = f'{class_names[int(classes[i])]} {scores[i]:.2f}'
    _draw_tag(out, text, color, r0, c0, scale, thickness)
  return out


def save_png(path: str, image: np.ndarray) -> None:
  """Writes the uint8 RGB `image` to `path` as PNG, atomically (a temporary
  file in the same folder, then renamed), creating the folder."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f'image must be uint8 (H, W, 3), got {image.dtype} '
                     f'{image.shape}')
  ok, encoded = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  if not ok:
    raise OSError(f'OpenCV could not encode a PNG for {path}')
  stage_files.write_atomically(path, lambda f: f.write(encoded.tobytes()))


def output_name(image_path: str, taken: set[str]) -> str:
  """The PNG file name for `image_path`: its base name with the extension
  replaced by '.png', then '-2', '-3', ... before it while the name is in
  `taken` (inputs of one base name from different folders). Adds the result
  to `taken`."""
  stem = os.path.splitext(os.path.basename(image_path))[0]
  name, k = f'{stem}.png', 2
  while name in taken:
    name, k = f'{stem}-{k}.png', k + 1
  taken.add(name)
  return name
