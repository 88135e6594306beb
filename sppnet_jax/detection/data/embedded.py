"""The embedded detection data set: small scenes of shapes, made on the spot and
written as COCO-format files.

The default detection run trains on this set, so that it works on a machine
with no data and no network, and it reads it through the same code path as a
user's COCO folder. `ensure_embedded_detection_dataset()` draws it once (numpy +
PIL, deterministically seeded, a few seconds on two cores):

    root/train/annotations.json, root/train/images/000001.jpg ... (600 images)
    root/val/annotations.json,   root/val/images/000001.jpg ...   (100 images)
    root/test/annotations.json,  root/test/images/000001.jpg ...  (200 images)

`val` is for choosing among models (e.g. the fine-tuning checkpoint with the
best validation mAP) without looking at `test`. The three splits are drawn
from the same distribution with different seeds (`example_seed`), so no image
is in two of them.

Each image (128..256 pixels on each side, usually not square) shows 1..5
objects of 8 classes, the shapes and patterns of the classification set
(`core.data.drawing`) stretched to aspect ratios 1:2..2:1, with nominal long
sides log-uniform from 16 pixels to 85% of the image's short side, in random
colours that contrast with what they are drawn over, on a colour gradient;
sensor-like noise covers everything. Later objects are drawn over earlier ones
(partial occlusion); a placement that would leave an object less than 30%
visible is drawn again (10 tries, then the scene keeps the objects it has).

annotations.json is standard COCO (`images`, `annotations`, `categories`,
`info`), with these conventions:

* `file_name` is relative to the split folder ('images/000001.jpg'); image and
  annotation ids count from 1.
* Category ids are not contiguous (`CATEGORIES`: 1, 2, 3, 5, 7, 11, 13, 17), as
  in COCO itself, so a reader must map ids to labels.
* `bbox` [x, y, width, height] is exact, in continuous pixel coordinates
  (`detection.boxes`): the tight box of the object's *visible* pixels, as the
  VOC guidelines ask ("the bounding box of the visible area of the object, not
  the estimated total extent"). A pixel is the object's if its anti-aliased
  coverage (drawn at 2x and box-filtered down) is above 0 and no later object
  covers it fully. Boxes are integers: pixel columns x0..x1-1 give x = x0,
  width = x1 - x0.
* `area` is the box's area (width * height; there are no segmentations);
  `iscrowd` is 0.
* `difficult` (0 or 1) is VOC's flag, a non-standard field that COCO readers
  ignore: an object is difficult when its visible box has an area under 16^2
  pixels or less than half of it is visible.

The set is built in a temporary folder next to `root` and renamed into place
with a completion marker (`core.data.build_once`): a crash half-way never leaves
a partial set, and a second call (or a second process) reuses the first one's.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os

import numpy as np
from PIL import Image
from PIL import ImageChops

from sppnet_jax.core.data import build_once
from sppnet_jax.core.data import drawing
from sppnet_jax.detection import boxes as box_lib

VERSION = 2  # 2: the val split (1 had train and test only)
# (COCO category id, name), by id. The ids are deliberately not 0..7.
CATEGORIES = (
    (1, 'circle'),
    (2, 'square'),
    (3, 'triangle'),
    (5, 'star'),
    (7, 'cross'),
    (11, 'ring'),
    (13, 'checkerboard'),
    (17, 'stripes'),
)
SPLITS = ('train', 'val', 'test')
# Each split's code in `example_seed`: fixed, not the position in SPLITS, so
# that adding a split does not reshuffle the images of the others.
SPLIT_CODES = {'train': 0, 'test': 1, 'val': 2}
NUM_TRAIN = 600
NUM_VAL = 100
NUM_TEST = 200
MIN_SIDE = 128
MAX_SIDE = 256
MAX_OBJECTS = 5
MIN_OBJECT_SIDE = 16  # the smallest long side of an object, in pixels
MAX_OBJECT_FRACTION = 0.85  # the largest long side / the image's short side
MAX_STRETCH = 2.0  # aspect ratios 1 / MAX_STRETCH .. MAX_STRETCH
MIN_VISIBLE = 0.3  # no object is left less visible than this
DIFFICULT_VISIBLE = 0.5  # difficult below this visible fraction ...
DIFFICULT_AREA = 16 * 16  # ... or below this visible box area (pixels)
MARKER = build_once.MARKER
_SEED = 14064729  # arXiv 1406.4729
_SUPERSAMPLE = 2
_NOISE_SIDE = 2 * MAX_SIDE
_PLACEMENT_TRIES = 10
_PARALLEL_FROM = 64  # images; smaller sets are drawn in this process


def default_root() -> str:
  """`$SPPNET_DETECTION_DATA_DIR` if set, else
  `~/.cache/sppnet_jax/embedded-detection-v2`.

  Not `$SPPNET_DATA_DIR` (the classification set's root) nor a folder inside
  it: the classification set refuses a non-empty root that it did not make.
  """
  return build_once.default_root('SPPNET_DETECTION_DATA_DIR',
                                 f'embedded-detection-v{VERSION}')


def is_complete(root: str) -> bool:
  return build_once.is_complete(root)


def ensure_embedded_detection_dataset(
    root: str | None = None,
    *,
    num_train: int = NUM_TRAIN,
    num_val: int = NUM_VAL,
    num_test: int = NUM_TEST,
    num_workers: int | None = None,
) -> str:
  """Makes the embedded detection set under `root` unless it is already there.

  Args:
    root: where the set lives (`root/train/annotations.json`, `root/train/
      images/*.jpg`, `root/val/...`, `root/test/...`); None or '' means
      `default_root()`.
    num_train: images in train/ (tests use fewer).
    num_val: images in val/.
    num_test: images in test/.
    num_workers: processes that draw the images; None: one per CPU core. Sets
      under 64 images are drawn in this process. The files do not depend on it.

  Returns:
    The root folder, complete.

  Raises:
    DataError (a ValueError): `root` exists, is not empty, and is not a
      complete generated set (we never overwrite a folder we did not make).
  """

  def write(out_dir):
    counts = _write_dataset(
        out_dir, {'train': num_train, 'val': num_val, 'test': num_test},
        num_workers)
    return {'version': VERSION, 'num_train': num_train, 'num_val': num_val,
            'num_test': num_test,
            'categories': [list(c) for c in CATEGORIES], **counts}

  return build_once.build_once(
      root or default_root(), write,
      settings={'version': VERSION, 'num_train': num_train,
                'num_val': num_val, 'num_test': num_test},
      description=(f'the embedded detection data set ({len(CATEGORIES)} '
                   f'classes, {num_train} train + {num_val} val + {num_test} '
                   'test images)'))


def example_seed(split: str, index: int) -> list[int]:
  """The seed of image `index` (0-based) of `split`: every image has its own,
  so the set does not depend on the order or the process that draws it, nor
  on the number of images asked for.

  [_SEED, VERSION, SPLIT_CODES[split], index]: a split is named by its fixed
  code (train 0, test 1, val 2), not by its position in SPLITS, so that train
  and test draw the same images as they would without val (for this VERSION).
  """
  return [_SEED, VERSION, SPLIT_CODES[split], index]


def _write_one(job):
  """Draws and saves one image: (COCO image entry, [(box, category id,
  difficult)])."""
  split_dir, split, index = job
  example = render_example(np.random.default_rng(example_seed(split, index)))
  file_name = f'images/{index + 1:06d}.jpg'
  example.image.save(os.path.join(split_dir, file_name), format='JPEG',
                     quality=example.quality)
  h, w = example.masks.shape[1:]
  objects = list(zip(example.boxes().tolist(), example.category_ids,
                     example.difficult))
  return {'id': index + 1, 'file_name': file_name, 'height': h,
          'width': w}, objects


def _write_dataset(out_dir, counts, num_workers):
  jobs = []
  for split in SPLITS:
    os.makedirs(os.path.join(out_dir, split, 'images'))
    jobs += [(os.path.join(out_dir, split), split, i)
             for i in range(counts[split])]
  workers = (os.cpu_count() or 1) if num_workers is None else num_workers
  if len(jobs) < _PARALLEL_FROM or workers <= 1:
    results = [_write_one(job) for job in jobs]
  else:
    # 'spawn': the parent may hold JAX's threads, which fork does not copy.
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
      results = pool.map(_write_one, jobs, chunksize=16)
  stats = {}
  for split in SPLITS:
    split_results = [r for job, r in zip(jobs, results) if job[1] == split]
    coco = _coco_json(split, split_results)
    with open(os.path.join(out_dir, split, 'annotations.json'), 'w') as f:
      json.dump(coco, f)
    stats[f'num_{split}_objects'] = len(coco['annotations'])
    stats[f'num_{split}_difficult'] = sum(
        a['difficult'] for a in coco['annotations'])
  return stats


def _coco_json(split, results):
  """The COCO dict of one split from `_write_one`'s results, in image order."""
  images, annotations = [], []
  for image, objects in results:
    images.append(image)
    for box, category_id, difficult in objects:
      x, y, bw, bh = (float(v) for v in box_lib.to_coco(box))
      annotations.append({
          'id': len(annotations) + 1, 'image_id': image['id'],
          'category_id': category_id, 'bbox': [x, y, bw, bh],
          'area': bw * bh, 'iscrowd': 0, 'difficult': int(difficult)})
  return {
      'info': {'description': 'sppnet_jax embedded detection set, '
                              f'{split} split (generated)',
               'version': str(VERSION),
               'difficult': 'non-standard field: 1 marks VOC-style '
                            'difficult objects'},
      'images': images,
      'annotations': annotations,
      'categories': [{'id': i, 'name': name} for i, name in CATEGORIES],
  }


# -----------------------------------------------------------------------------
# Drawing (the primitives are in core.data.drawing).
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Example:
  """One image and how it was made, objects in drawing order (later over
  earlier). `image` = clip(composite of the objects over `background` + noise
  - 128), composite = colour * m + under * (1 - m) with m = mask / 255."""
  image: Image.Image  # RGB, h x w, before JPEG
  background: Image.Image  # RGB, the gradient under the objects, before noise
  noise: Image.Image  # RGB, the sensor noise added last, centred on 128
  masks: np.ndarray  # (n, h, w) uint8: each object's coverage, occlusion aside
  colours: np.ndarray  # (n, 3) uint8
  category_ids: tuple[int, ...]
  difficult: tuple[bool, ...]
  quality: int  # of the JPEG file

  def boxes(self) -> np.ndarray:
    """(n, 4) float32 (y0, x0, y1, x1): tight boxes of the visible pixels."""
    return tight_boxes(visible_pixels(self.masks))


def visible_pixels(masks: np.ndarray) -> np.ndarray:
  """(n, h, w) bool: object i shows at a pixel if it covers some of it and no
  later object covers it fully."""
  masks = np.asarray(masks)
  hidden = np.zeros(masks.shape[1:], bool)
  out = np.zeros(masks.shape, bool)
  for i in range(len(masks) - 1, -1, -1):
    out[i] = (masks[i] > 0) & ~hidden
    hidden |= masks[i] == 255
  return out


def tight_boxes(pixels: np.ndarray) -> np.ndarray:
  """(n, 4) float32 (y0, x0, y1, x1) of each (h, w) bool map's true pixels;
  every map must have one."""
  out = []
  for p in pixels:
    rows, cols = np.flatnonzero(p.any(1)), np.flatnonzero(p.any(0))
    out.append((rows[0], cols[0], rows[-1] + 1, cols[-1] + 1))
  return np.array(out, np.float32).reshape(-1, 4)


def _visible_fractions(masks):
  """Each object's visible coverage / its coverage, with anti-aliased edges
  counted by how much of them shows."""
  m = masks.astype(np.float32) / 255
  shown = np.ones(masks.shape[1:], np.float32)
  out = np.zeros(len(masks))
  for i in range(len(masks) - 1, -1, -1):
    out[i] = float((m[i] * shown).sum()) / max(float(m[i].sum()), 1e-6)
    shown *= 1 - m[i]
  return out


def _object_mask(name, rng, h, w):
  """(h, w) uint8 mask of one object of class `name` at a random place, size
  and aspect ratio."""
  short = min(h, w)
  long_side = np.exp(rng.uniform(np.log(MIN_OBJECT_SIDE),
                                 np.log(MAX_OBJECT_FRACTION * short)))
  stretch = np.exp(rng.uniform(-np.log(MAX_STRETCH), np.log(MAX_STRETCH)))
  rx = long_side / 2 * min(1.0, stretch)
  ry = long_side / 2 * min(1.0, 1 / stretch)
  # Centre: the nominal extent stays (almost) inside the image.
  cx = rng.uniform(rx * 0.9, w - rx * 0.9)
  cy = rng.uniform(ry * 0.9, h - ry * 0.9)
  if name in ('checkerboard', 'stripes'):
    ph, pw = max(int(round(2 * ry)), 4), max(int(round(2 * rx)), 4)
    top = int(np.clip(round(cy - ph / 2), 0, h - ph))
    left = int(np.clip(round(cx - pw / 2), 0, w - pw))
    if name == 'stripes':
      name = ('horizontal_stripes', 'vertical_stripes')[int(rng.integers(2))]
    side = min(ph, pw)  # 3..6 periods across the short side
    period_range = (max(4.0, side / 6), max(5.0, side / 3))
    mask = np.zeros((h, w), np.uint8)
    mask[top:top + ph, left:left + pw] = drawing.pattern(
        name, rng, ph, pw, period_range) * np.uint8(255)
    return mask
  return np.asarray(drawing.shape_mask(name, rng, h, w, cx, cy, rx, ry,
                                       supersample=_SUPERSAMPLE))


def _composite(under, colour, mask):
  return Image.composite(drawing.solid(colour, *mask.shape), under,
                         Image.fromarray(mask, 'L'))


def render_example(rng: np.random.Generator) -> Example:
  """One scene of 1..MAX_OBJECTS objects (see the module docstring)."""
  w, h = (int(x) for x in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
  background, _ = drawing.gradient_background(rng, h, w)
  canvas = background
  masks, colours, category_ids = [], [], []
  for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
    for _ in range(_PLACEMENT_TRIES):
      category_id, name = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
      mask = _object_mask(name, rng, h, w)
      if not mask.any():
        continue
      fractions = _visible_fractions(np.stack(masks + [mask]))
      if fractions.min() >= MIN_VISIBLE:
        break
    else:
      break  # No room for another object.
    # Contrast with what the object is drawn over (background, other objects).
    weight = mask.astype(np.float32)[..., None]
    under = (np.asarray(canvas, np.float32) * weight).sum((0, 1)) / weight.sum()
    colour = drawing.contrasting_colour(rng, under).astype(np.uint8)
    canvas = _composite(canvas, colour, mask)
    masks.append(mask)
    colours.append(colour)
    category_ids.append(category_id)
  masks = np.stack(masks)
  fractions = _visible_fractions(masks)
  areas = box_lib.areas(tight_boxes(visible_pixels(masks)))
  difficult = tuple(bool(f < DIFFICULT_VISIBLE or a < DIFFICULT_AREA)
                    for f, a in zip(fractions, areas))
  textures = drawing.noise_textures((_SEED, VERSION, 99), _NOISE_SIDE)
  noise = drawing.noise(rng, h, w, textures)
  image = ImageChops.add(canvas, noise, scale=1.0, offset=-128)
  return Example(image=image, background=background, noise=noise, masks=masks,
                 colours=np.stack(colours), category_ids=tuple(category_ids),
                 difficult=difficult, quality=int(rng.integers(75, 96)))
