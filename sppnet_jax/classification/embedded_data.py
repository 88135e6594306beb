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
second call (or a second process) reuses what the first made
(`core.data.build_once`). The drawing functions are shared with the detection
set (`core.data.drawing`); the files are byte-identical to those of the code
before that sharing, as the published results were trained on them.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from PIL import ImageChops

from sppnet_jax.core.data import build_once
from sppnet_jax.core.data import drawing

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
MARKER = build_once.MARKER
_SEED = 20140618  # arXiv 1406.4729
_SUPERSAMPLE = 2  # shapes are drawn at 2x and box-filtered down (anti-aliasing)
_NOISE_SIDE = 2 * MAX_SIDE


def default_root() -> str:
  """`$SPPNET_DATA_DIR` if set, else `~/.cache/sppnet_jax/embedded-v1`."""
  return build_once.default_root('SPPNET_DATA_DIR', f'embedded-v{VERSION}')


def is_complete(root: str) -> bool:
  return build_once.is_complete(root)


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
    DataError (a ValueError): `root` exists, is not empty, and is not a
      complete embedded set (we never overwrite a folder we did not make).
  """
  num_train = num_train_per_class * len(CLASSES)
  num_val = num_val_per_class * len(CLASSES)

  def write(out_dir):
    counts = _write_dataset(out_dir, num_train_per_class, num_val_per_class)
    return {'version': VERSION, 'classes': list(CLASSES), **counts}

  return build_once.build_once(
      root or default_root(), write,
      settings={'version': VERSION,
                'num_train_per_class': num_train_per_class,
                'num_val_per_class': num_val_per_class},
      description=(f'the embedded data set ({len(CLASSES)} classes, '
                   f'{num_train} train + {num_val} val images)'))


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
# Drawing (the primitives are in core.data.drawing).
# -----------------------------------------------------------------------------


def _shape_mask(name, rng, h, w):
  """Anti-aliased mask (PIL 'L' image) of one large shape."""
  short = min(h, w)
  size = rng.uniform(0.45, 0.8) * short  # diameter / side, in pixels
  r = size / 2
  # Center: the shape stays (almost) inside the image.
  cx = rng.uniform(r * 0.9, w - r * 0.9)
  cy = rng.uniform(r * 0.9, h - r * 0.9)
  return drawing.shape_mask(name, rng, h, w, cx, cy, r, r,
                            supersample=_SUPERSAMPLE)


def _pattern_mask(name, rng, h, w):
  """Mask (PIL 'L' image) of a periodic pattern in a large random rectangle."""
  ph = int(rng.uniform(0.55, 0.95) * h)
  pw = int(rng.uniform(0.55, 0.95) * w)
  top = rng.integers(0, h - ph + 1)
  left = rng.integers(0, w - pw + 1)
  pattern = drawing.pattern(name, rng, ph, pw, period_range=(10, 22))
  mask = np.zeros((h, w), np.uint8)
  mask[top:top + ph, left:left + pw] = pattern * np.uint8(255)
  return Image.fromarray(mask, 'L')


def render_example(name: str, rng: np.random.Generator):
  """One image of class `name`: (PIL RGB image, JPEG quality)."""
  w, h = (int(x) for x in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
  background, background_mean = drawing.gradient_background(rng, h, w)
  colour = drawing.contrasting_colour(rng, background_mean)
  if name in drawing.PATTERNS:
    mask = _pattern_mask(name, rng, h, w)
  else:
    mask = _shape_mask(name, rng, h, w)
  image = Image.composite(drawing.solid(colour, h, w), background, mask)
  # Sensor-like noise over everything: image + noise - 128, clipped.
  textures = drawing.noise_textures((_SEED, VERSION, 99), _NOISE_SIDE)
  image = ImageChops.add(image, drawing.noise(rng, h, w, textures), scale=1.0,
                         offset=-128)
  return image, int(rng.integers(75, 96))
