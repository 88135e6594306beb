"""The embedded data set: a small, learnable, 10-class image set made on the spot.

The default run trains on this set, so that `main.py` works on a machine with no
data and no network. `ensure_embedded_dataset()` draws it once (numpy + PIL,
deterministically seeded, a few seconds on two cores) as real JPEG files in the
same class-per-folder layout that the image-folder input pipeline reads:

    root/train/<class>/<class>_0000.jpg ... (300 per class)
    root/val/<class>/<class>_0000.jpg   ... (53 per class: deliberately not a
                                              multiple of any usual batch size)

Each image shows one large shape or pattern (the class) in a random colour at a
random position and scale, on a noisy colour-gradient background; images are
96..192 pixels on each side and usually not square. The set is built in a
temporary folder next to `root` that is renamed into place at the end, with a
completion marker inside it, so a crash half-way never leaves a partial set and a
second call (or a second process) reuses what the first made.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image
from PIL import ImageChops
from PIL import ImageDraw

VERSION = 1
# Sorted, so that the class id (sorted folder names) is the index in this tuple.
CLASSES = (
    'checkerboard',
    'circle',
    'cross',
    'dots',
    'horizontal_stripes',
    'ring',
    'square',
    'star',
    'triangle',
    'vertical_stripes',
)
NUM_TRAIN_PER_CLASS = 300
NUM_VAL_PER_CLASS = 53
MIN_SIDE = 96
MAX_SIDE = 192
MARKER = '.complete'
_SEED = 20140618  # arXiv 1406.4729
_SUPERSAMPLE = 2  # shapes are drawn at 2x and box-filtered down (anti-aliasing)


def default_root() -> str:
  """`$SPPNET_DATA_DIR` if set, else `~/.cache/sppnet_jax/embedded-v1`."""
  env = os.environ.get('SPPNET_DATA_DIR')
  if env:
    return os.path.expanduser(env)
  return os.path.join(
      os.path.expanduser('~'), '.cache', 'sppnet_jax', f'embedded-v{VERSION}')


def is_complete(root: str) -> bool:
  return os.path.isfile(os.path.join(root, MARKER))


def ensure_embedded_dataset(
    root: str | None = None,
    *,
    num_train_per_class: int = NUM_TRAIN_PER_CLASS,
    num_val_per_class: int = NUM_VAL_PER_CLASS,
) -> str:
  """Makes the embedded data set under `root` unless it is already there.

  Args:
    root: where the set lives (`root/train/<class>/*.jpg`, `root/val/...`);
      None or '' means `default_root()`.
    num_train_per_class: images per class in train/ (tests use fewer).
    num_val_per_class: images per class in val/.

  Returns:
    The root folder, complete.

  Raises:
    ValueError: `root` exists, is not empty, and is not a complete embedded set
      (we never overwrite a folder we did not make).
  """
  root = os.path.abspath(os.path.expanduser(root or default_root()))
  if is_complete(root):
    _check_marker(root, num_train_per_class, num_val_per_class)
    return root
  if os.path.isdir(root) and os.listdir(root):
    raise ValueError(
        f'{root} exists but holds no complete embedded data set (no {MARKER} '
        'marker): delete it, or point --config.data_dir at an empty or new '
        'folder.')
  parent = os.path.dirname(root)
  os.makedirs(parent, exist_ok=True)
  start = time.time()
  tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(root)}.tmp-', dir=parent)
  try:
    counts = _write_dataset(tmp, num_train_per_class, num_val_per_class)
    with open(os.path.join(tmp, MARKER), 'w') as f:
      json.dump({'version': VERSION, 'classes': list(CLASSES), **counts}, f)
    try:
      if os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)  # An empty folder (e.g. made by the user) is replaced.
      os.rename(tmp, root)
    except OSError:
      if not is_complete(root):  # Not another process winning the race.
        raise
      logging.info('Embedded data set made concurrently at %s; using it.', root)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  logging.info('Made the embedded data set (%d classes, %d train + %d val '
               'images) at %s in %.1f s.', len(CLASSES),
               counts['num_train'], counts['num_val'], root,
               time.time() - start)
  return root


def _check_marker(root, num_train_per_class, num_val_per_class):
  try:
    with open(os.path.join(root, MARKER)) as f:
      marker = json.load(f)
  except (OSError, ValueError):
    return
  want = {'version': VERSION,
          'num_train_per_class': num_train_per_class,
          'num_val_per_class': num_val_per_class}
  got = {k: marker.get(k) for k in want}
  if got != want:
    logging.warning('Embedded data set at %s was made with %s, not %s; using '
                    'it as it is (delete the folder to remake it).', root, got,
                    want)


def _write_one(job):
  path, name, seed = job
  image, quality = render_example(name, np.random.default_rng(seed))
  image.save(path, format='JPEG', quality=quality)


def _write_dataset(out_dir, num_train_per_class, num_val_per_class):
  jobs = []
  for split_id, (split, count) in enumerate(
      (('train', num_train_per_class), ('val', num_val_per_class))):
    for class_id, name in enumerate(CLASSES):
      class_dir = os.path.join(out_dir, split, name)
      os.makedirs(class_dir)
      for i in range(count):
        jobs.append((os.path.join(class_dir, f'{name}_{i:04d}.jpg'), name,
                     [_SEED, VERSION, split_id, class_id, i]))
  # Every image has its own seed, so the result does not depend on the order.
  # (Threads do not help: the per-image work is too small to release the GIL.)
  for job in jobs:
    _write_one(job)
  return {'num_train_per_class': num_train_per_class,
          'num_val_per_class': num_val_per_class,
          'num_train': num_train_per_class * len(CLASSES),
          'num_val': num_val_per_class * len(CLASSES)}


# -----------------------------------------------------------------------------
# Drawing.
# -----------------------------------------------------------------------------


def _random_colour(rng):
  return rng.integers(0, 256, size=3).astype(np.float32)


def _contrasting_colour(rng, background_mean):
  """A colour far (in RGB) from the mean background colour."""
  best, best_dist = None, -1.0
  for _ in range(20):
    c = _random_colour(rng)
    dist = float(np.abs(c - background_mean).sum())
    if dist > 220:
      return c
    if dist > best_dist:
      best, best_dist = c, dist
  return best


def _background(rng, h, w):
  """Linear gradient between two random colours: (PIL RGB image, mean colour)."""
  c1, c2 = _random_colour(rng), _random_colour(rng)
  angle = rng.uniform(0, 2 * np.pi)
  ty = (np.sin(angle) / h) * np.arange(h, dtype=np.float32)
  tx = (np.cos(angle) / w) * np.arange(w, dtype=np.float32)
  t = ty[:, None] + tx[None, :]
  t -= t.min()
  t *= 255 / max(float(t.max()), 1e-6)
  weight = Image.fromarray(t.astype(np.uint8), 'L')
  image = Image.composite(_solid(c2, h, w), _solid(c1, h, w), weight)
  return image, (c1 + c2) / 2


def _solid(colour, h, w):
  return Image.new('RGB', (w, h), tuple(int(c) for c in colour))


_NOISE_SIDE = 2 * MAX_SIDE
_NOISE_SIGMAS = (3, 6, 9, 12)
_noise_textures = []


def _noise(rng, h, w):
  """A window of a fixed, seeded Gaussian noise texture, centered on 128."""
  if not _noise_textures:
    noise_rng = np.random.default_rng([_SEED, VERSION, 99])
    for sigma in _NOISE_SIGMAS:
      n = noise_rng.standard_normal((_NOISE_SIDE, _NOISE_SIDE, 3),
                                    dtype=np.float32)
      _noise_textures.append(
          Image.fromarray(np.clip(n * sigma + 128.5, 0, 255).astype(np.uint8),
                          'RGB'))
  texture = _noise_textures[int(rng.integers(len(_noise_textures)))]
  top = int(rng.integers(0, _NOISE_SIDE - h + 1))
  left = int(rng.integers(0, _NOISE_SIDE - w + 1))
  return texture.crop((left, top, left + w, top + h))


def _polygon(cx, cy, radius, n, angle, inner=None):
  """A regular n-gon (or an n-pointed star with inner radius `inner`)."""
  points = []
  steps = 2 * n if inner else n
  for k in range(steps):
    r = radius if (not inner or k % 2 == 0) else inner
    a = angle + 2 * np.pi * k / steps
    points.append((cx + r * np.cos(a), cy + r * np.sin(a)))
  return points


def _rotated_rect(cx, cy, half_w, half_h, angle):
  c, s = np.cos(angle), np.sin(angle)
  return [(cx + c * x - s * y, cy + s * x + c * y)
          for x, y in ((-half_w, -half_h), (half_w, -half_h),
                       (half_w, half_h), (-half_w, half_h))]


def _shape_mask(name, rng, h, w):
  """Anti-aliased mask (PIL 'L' image) of one large shape."""
  ss = _SUPERSAMPLE
  mask = Image.new('L', (w * ss, h * ss), 0)
  draw = ImageDraw.Draw(mask)
  short = min(h, w)
  size = rng.uniform(0.45, 0.8) * short  # diameter / side, in pixels
  r = size / 2
  # Center: the shape stays (almost) inside the image.
  cx = rng.uniform(r * 0.9, w - r * 0.9)
  cy = rng.uniform(r * 0.9, h - r * 0.9)
  cx, cy, r = cx * ss, cy * ss, r * ss
  if name == 'circle':
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
  elif name == 'ring':
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    inner = r * rng.uniform(0.45, 0.65)
    draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
  elif name == 'square':
    half = r / math.sqrt(2) * rng.uniform(1.0, 1.3)
    angle = rng.uniform(-np.pi / 8, np.pi / 8)
    draw.polygon(_rotated_rect(cx, cy, half, half, angle), fill=255)
  elif name == 'triangle':
    draw.polygon(_polygon(cx, cy, r, 3, rng.uniform(0, 2 * np.pi)), fill=255)
  elif name == 'star':
    draw.polygon(
        _polygon(cx, cy, r, 5, rng.uniform(0, 2 * np.pi),
                 inner=r * rng.uniform(0.35, 0.5)), fill=255)
  elif name == 'cross':
    angle = rng.uniform(-np.pi / 9, np.pi / 9)
    arm = r * rng.uniform(0.18, 0.28)
    draw.polygon(_rotated_rect(cx, cy, r, arm, angle), fill=255)
    draw.polygon(_rotated_rect(cx, cy, arm, r, angle), fill=255)
  else:
    raise ValueError(name)
  return mask.resize((w, h), Image.Resampling.BOX)


def _pattern_mask(name, rng, h, w):
  """Mask (PIL 'L' image) of a periodic pattern in a large random rectangle."""
  ph = int(rng.uniform(0.55, 0.95) * h)
  pw = int(rng.uniform(0.55, 0.95) * w)
  top = rng.integers(0, h - ph + 1)
  left = rng.integers(0, w - pw + 1)
  period = rng.uniform(10, 22)
  phase_y, phase_x = rng.uniform(0, period, size=2)
  yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
  yy += phase_y
  xx += phase_x
  if name == 'horizontal_stripes':
    pattern = (yy % period) < period / 2
  elif name == 'vertical_stripes':
    pattern = (xx % period) < period / 2
  elif name == 'checkerboard':
    pattern = ((yy // (period / 2)) + (xx // (period / 2))) % 2 == 0
  elif name == 'dots':
    radius = period * rng.uniform(0.2, 0.3)
    dy = (yy % period) - period / 2
    dx = (xx % period) - period / 2
    pattern = dy * dy + dx * dx <= radius * radius
  else:
    raise ValueError(name)
  mask = np.zeros((h, w), np.uint8)
  mask[top:top + ph, left:left + pw] = pattern * np.uint8(255)
  return Image.fromarray(mask, 'L')


def render_example(name: str, rng: np.random.Generator):
  """One image of class `name`: (PIL RGB image, JPEG quality)."""
  w, h = (int(x) for x in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
  background, background_mean = _background(rng, h, w)
  colour = _contrasting_colour(rng, background_mean)
  if name in ('horizontal_stripes', 'vertical_stripes', 'checkerboard',
              'dots'):
    mask = _pattern_mask(name, rng, h, w)
  else:
    mask = _shape_mask(name, rng, h, w)
  image = Image.composite(_solid(colour, h, w), background, mask)
  # Sensor-like noise over everything: image + noise - 128, clipped.
  image = ImageChops.add(image, _noise(rng, h, w), scale=1.0, offset=-128)
  return image, int(rng.integers(75, 96))
