"""Drawing the generated data sets: colour-gradient backgrounds, sensor-like
noise, and the masks of shapes and periodic patterns.

Both embedded sets (classification's one-shape images, detection's scenes of
several objects) draw with these functions, so a shape looks the same in both.
Every random choice comes from the `numpy.random.Generator` passed in, in a
fixed order: the sets are seeded per image, and the classification set's files
must stay byte-identical, so a change here that draws numbers in another order
(or computes a coordinate with other float rounding) changes its published
results.

Conventions: images are PIL images of (width, height) = (w, h); a mask is a PIL
'L' image (or a uint8 array) of coverage 0..255; shapes are drawn at
`supersample` times the resolution and box-filtered down, so their edges are
anti-aliased; (cx, cy) and radii are in pixels of the output, continuous
coordinates (pixel i spans [i, i + 1)).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image
from PIL import ImageDraw

SHAPES = ('circle', 'cross', 'ring', 'square', 'star', 'triangle')
PATTERNS = ('checkerboard', 'dots', 'horizontal_stripes', 'vertical_stripes')
NOISE_SIGMAS = (3, 6, 9, 12)


def random_colour(rng: np.random.Generator) -> np.ndarray:
  return rng.integers(0, 256, size=3).astype(np.float32)


def contrasting_colour(rng: np.random.Generator,
                       background_mean: np.ndarray) -> np.ndarray:
  """A colour far (in RGB) from `background_mean`: the first of 20 random
  colours at L1 distance > 220, else the farthest of them."""
  best, best_dist = None, -1.0
  for _ in range(20):
    c = random_colour(rng)
    dist = float(np.abs(c - background_mean).sum())
    if dist > 220:
      return c
    if dist > best_dist:
      best, best_dist = c, dist
  return best


def solid(colour, h: int, w: int) -> Image.Image:
  return Image.new('RGB', (w, h), tuple(int(c) for c in colour))


def gradient_background(rng: np.random.Generator, h: int, w: int):
  """Linear gradient between two random colours in a random direction:
  (PIL RGB image, mean colour)."""
  c1, c2 = random_colour(rng), random_colour(rng)
  angle = rng.uniform(0, 2 * np.pi)
  ty = (np.sin(angle) / h) * np.arange(h, dtype=np.float32)
  tx = (np.cos(angle) / w) * np.arange(w, dtype=np.float32)
  t = ty[:, None] + tx[None, :]
  t -= t.min()
  t *= 255 / max(float(t.max()), 1e-6)
  weight = Image.fromarray(t.astype(np.uint8), 'L')
  image = Image.composite(solid(c2, h, w), solid(c1, h, w), weight)
  return image, (c1 + c2) / 2


@functools.lru_cache(maxsize=4)
def noise_textures(seed: tuple[int, ...], side: int,
                   sigmas: tuple[int, ...] = NOISE_SIGMAS):
  """Fixed Gaussian noise textures (side x side RGB, centred on 128), one per
  sigma. Made once per process and seed (a few tens of ms) rather than per
  image; `noise_textures.cache_clear()` frees them."""
  noise_rng = np.random.default_rng(list(seed))
  textures = []
  for sigma in sigmas:
    n = noise_rng.standard_normal((side, side, 3), dtype=np.float32)
    textures.append(
        Image.fromarray(np.clip(n * sigma + 128.5, 0, 255).astype(np.uint8),
                        'RGB'))
  return tuple(textures)


def noise(rng: np.random.Generator, h: int, w: int, textures) -> Image.Image:
  """A random h x w window of one of `textures` (random sigma), centred on 128:
  add it with `ImageChops.add(image, noise, offset=-128)`."""
  texture = textures[int(rng.integers(len(textures)))]
  side = texture.size[0]
  top = int(rng.integers(0, side - h + 1))
  left = int(rng.integers(0, side - w + 1))
  return texture.crop((left, top, left + w, top + h))


def polygon(cx, cy, rx, ry, n, angle, inner=None):
  """A regular n-gon of radii (rx, ry), or an n-pointed star whose inner
  vertices have radii `inner` = (inner_x, inner_y)."""
  points = []
  steps = 2 * n if inner else n
  for k in range(steps):
    px, py = (rx, ry) if (not inner or k % 2 == 0) else inner
    a = angle + 2 * np.pi * k / steps
    points.append((cx + px * np.cos(a), cy + py * np.sin(a)))
  return points


def rotated_rect(cx, cy, half_w, half_h, angle):
  c, s = np.cos(angle), np.sin(angle)
  return [(cx + c * x - s * y, cy + s * x + c * y)
          for x, y in ((-half_w, -half_h), (half_w, -half_h),
                       (half_w, half_h), (-half_w, half_h))]


def draw_shape(draw: ImageDraw.ImageDraw, name: str, rng: np.random.Generator,
               cx: float, cy: float, rx: float, ry: float) -> None:
  """Draws shape `name` (one of SHAPES) with fill 255, centred on (cx, cy) with
  horizontal / vertical radii (rx, ry) in `draw`'s pixels; rx != ry stretches
  it. Draws the shape's own random parameters (ring width, rotation, ...)."""
  if name == 'circle':
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
  elif name == 'ring':
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    k = rng.uniform(0.45, 0.65)
    ix, iy = rx * k, ry * k
    draw.ellipse((cx - ix, cy - iy, cx + ix, cy + iy), fill=0)
  elif name == 'square':
    k = rng.uniform(1.0, 1.3)
    half_w, half_h = rx / math.sqrt(2) * k, ry / math.sqrt(2) * k
    angle = rng.uniform(-np.pi / 8, np.pi / 8)
    draw.polygon(rotated_rect(cx, cy, half_w, half_h, angle), fill=255)
  elif name == 'triangle':
    draw.polygon(polygon(cx, cy, rx, ry, 3, rng.uniform(0, 2 * np.pi)),
                 fill=255)
  elif name == 'star':
    angle = rng.uniform(0, 2 * np.pi)
    k = rng.uniform(0.35, 0.5)
    draw.polygon(polygon(cx, cy, rx, ry, 5, angle, inner=(rx * k, ry * k)),
                 fill=255)
  elif name == 'cross':
    angle = rng.uniform(-np.pi / 9, np.pi / 9)
    arm = min(rx, ry) * rng.uniform(0.18, 0.28)
    draw.polygon(rotated_rect(cx, cy, rx, arm, angle), fill=255)
    draw.polygon(rotated_rect(cx, cy, arm, ry, angle), fill=255)
  else:
    raise ValueError(f'Unknown shape {name!r}; known: {SHAPES}.')


def shape_mask(name: str, rng: np.random.Generator, h: int, w: int,
               cx: float, cy: float, rx: float, ry: float,
               supersample: int = 2) -> Image.Image:
  """Anti-aliased h x w mask (PIL 'L') of one shape (see `draw_shape`), drawn at
  `supersample` x the resolution and box-filtered down."""
  ss = supersample
  mask = Image.new('L', (w * ss, h * ss), 0)
  draw_shape(ImageDraw.Draw(mask), name, rng, cx * ss, cy * ss, rx * ss,
             ry * ss)
  return mask.resize((w, h), Image.Resampling.BOX)


def pattern(name: str, rng: np.random.Generator, ph: int, pw: int,
            period_range: tuple[float, float] = (10, 22)) -> np.ndarray:
  """A (ph, pw) bool array of periodic pattern `name` (one of PATTERNS), of a
  random period in `period_range` (pixels) and random phase."""
  period = rng.uniform(*period_range)
  phase_y, phase_x = rng.uniform(0, period, size=2)
  yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
  yy += phase_y
  xx += phase_x
  if name == 'horizontal_stripes':
    return (yy % period) < period / 2
  if name == 'vertical_stripes':
    return (xx % period) < period / 2
  if name == 'checkerboard':
    return ((yy // (period / 2)) + (xx // (period / 2))) % 2 == 0
  if name == 'dots':
    radius = period * rng.uniform(0.2, 0.3)
    dy = (yy % period) - period / 2
    dx = (xx % period) - period / 2
    return dy * dy + dx * dx <= radius * radius
  raise ValueError(f'Unknown pattern {name!r}; known: {PATTERNS}.')
