"""End-to-end training's image-centric batches: the sampler against a
brute-force reference written here (its own IoU loop over random images with
ties, copies, empty images; the draw order of the module docstring replayed
with lists); determinism from (seed, step); process shares; and the assembled
arrays against hand-derived geometry (conv5 cells from receptive-field
centres, targets decoding back onto the ground truth, mirrored images)."""

import numpy as np
import pytest

from sppnet_jax.core import architectures
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features.conv5 import resize_to_scale
from sppnet_jax.detection.training import image_batches
from sppnet_jax.detection.training.image_batches import (BatchGeometry,
                                                         TrainImage)
from sppnet_jax.detection.training.image_sampling import (ImageSampler,
                                                          share_of)
from sppnet_jax.detection.training.sampling import label_regions
from sppnet_jax.errors import ConfigError, DataError
from tests.detection.training.test_sampling import _brute_force, _random_image
from tests.helpers import conv5_cells


def _images(seed=3, count=9):
  rng = np.random.default_rng(seed)
  out = []
  for k in range(count):
    n_gt = (0, 1, 2, 3, 5)[k % 5]
    proposals, gt, labels, difficult = _random_image(rng, 40, n_gt)
    out.append((proposals, gt, labels, difficult))
  return out


def _reference(images, n, r, fraction, fg_t, bg_low, flip, num_scales, seed,
               step):
  """The module docstring's draws with Python lists and the brute-force
  labels of test_sampling."""
  regions = []
  for proposals, gt, labels, difficult in images:
    want, _ = _brute_force(proposals.tolist(), gt.tolist(), labels.tolist(),
                           difficult.tolist(), True, True)
    regions.append([(iou, label) for _, iou, label, _ in want])
  rng = np.random.default_rng([seed, 0xE2E25, step])
  fg_of = lambda regs: [j for j, (iou, _) in enumerate(regs) if iou >= fg_t]
  bg_of = lambda regs: [j for j, (iou, _) in enumerate(regs)
                        if bg_low <= iou < fg_t]
  eligible = [i for i, regs in enumerate(regions) if fg_of(regs) + bg_of(regs)]
  chosen = [eligible[k] for k in rng.choice(len(eligible), n, replace=False)]
  rows = []
  for i in chosen:
    fg, bg = fg_of(regions[i]), bg_of(regions[i])
    f = min(int(r * fraction), len(fg))
    b = min(r - f, len(bg))
    take_fg = rng.choice(len(fg), f, replace=False)
    take_bg = rng.choice(len(bg), b, replace=False)
    rows.append([(fg[k], regions[i][fg[k]][1]) for k in take_fg]
                + [(bg[k], 0) for k in take_bg])
  flips = (rng.random(n) < 0.5).tolist() if flip else [False] * n
  scales = rng.integers(0, num_scales, n).tolist() if num_scales > 1 else [0] * n
  return chosen, rows, flips, scales


def _labelled(images):
  return [label_regions(p, g, l, d) for p, g, l, d in images]


@pytest.mark.parametrize('n, r, fraction, flip, num_scales',
                         [(2, 16, 0.25, True, 1), (3, 40, 0.5, False, 3),
                          (4, 8, 0.0, True, 2), (1, 64, 1.0, True, 1)])
def test_sampler_matches_brute_force(n, r, fraction, flip, num_scales):
  images = _images()
  sampler = ImageSampler(_labelled(images), images_per_batch=n,
                         regions_per_image=r, positive_fraction=fraction,
                         fg_threshold=0.5, bg_low=0.1, flip=flip,
                         num_scales=num_scales, seed=11)
  for step in (0, 1, 7, 123456):
    batch = sampler.global_batch(step)
    chosen, rows, flips, scales = _reference(images, n, r, fraction, 0.5, 0.1,
                                             flip, num_scales, 11, step)
    np.testing.assert_array_equal(batch.images, chosen)
    np.testing.assert_array_equal(batch.flips, flips)
    np.testing.assert_array_equal(batch.scales, scales)
    np.testing.assert_array_equal(batch.positions, np.arange(n))
    for row, want in enumerate(rows):
      count = len(want)
      np.testing.assert_array_equal(batch.valid[row],
                                    np.arange(r) < count)
      np.testing.assert_array_equal(batch.regions[row, :count],
                                    [j for j, _ in want])
      np.testing.assert_array_equal(batch.labels[row, :count],
                                    [label for _, label in want])
      assert not batch.labels[row, count:].any()
      assert not batch.regions[row, count:].any()
      assert len(set(batch.regions[row, :count].tolist())) == count


def test_sampler_is_a_function_of_seed_and_step_and_shares_split_it():
  labelled = _labelled(_images())
  make = lambda seed: ImageSampler(labelled, images_per_batch=4,
                                   regions_per_image=16, seed=seed)
  a, b = make(5), make(5)
  for field in ('images', 'regions', 'labels', 'flips'):
    np.testing.assert_array_equal(getattr(a(9), field), getattr(b(9), field))
  assert not np.array_equal(a(9).regions, a(10).regions)
  assert not np.array_equal(a(9).regions, make(6)(9).regions)
  whole = a.global_batch(3)
  parts = [a(3, p, 2) for p in range(2)]
  for field in ('images', 'regions', 'valid', 'labels', 'flips', 'scales',
                'positions'):
    merged = np.empty_like(getattr(whole, field))
    merged[0::2], merged[1::2] = (getattr(p, field) for p in parts)
    np.testing.assert_array_equal(merged, getattr(whole, field))
  np.testing.assert_array_equal(share_of(whole, 1, 2).images, parts[1].images)
  with pytest.raises(ConfigError, match='multiple of the process count 3'):
    a(3, 0, 3)


def test_sampler_errors():
  labelled = _labelled(_images(count=2))
  with pytest.raises(DataError, match='fewer than images_per_batch=3'):
    ImageSampler(labelled[:2], images_per_batch=3)
  with pytest.raises(ConfigError, match='regions_per_image'):
    ImageSampler(labelled, regions_per_image=0)


def _train_image(height, width, gt, labels, proposals):
  rng = np.random.default_rng(height * width)
  picture = rng.integers(0, 256, (height, width, 3), np.uint8)
  gt = np.asarray(gt, np.float32)
  regions = label_regions(np.asarray(proposals, np.float32), gt,
                          np.asarray(labels), np.zeros(len(gt), bool))
  return TrainImage(picture, gt, regions)


def test_assembled_arrays_by_hand():
  # Image 0: 100 x 150 at scale 344 -> 352 x 512 (344 and 516 rounded to
  # multiples of 16, halves to even).
  first = _train_image(100, 150, [[10, 20, 60, 90]], [2],
                       [[12, 24, 58, 95], [0, 0, 100, 150]])
  # Image 1: 160 x 120 at scale 344 -> 464 x 352 (458.7 and 344 in 16s).
  second = _train_image(160, 120, [[30, 10, 150, 70]], [0],
                        [[30, 12, 140, 66], [0, 0, 90, 119]])
  images = [first, second]
  geometry = BatchGeometry(scales=(344,), size_step=16, bucket_step=128)
  sampler = ImageSampler([i.regions for i in images], images_per_batch=2,
                         regions_per_image=4, positive_fraction=0.5,
                         flip=True, seed=0)
  step = next(s for s in range(100)
              if sampler.global_batch(s).flips.tolist() == [False, True]
              and sampler.global_batch(s).images.tolist() == [0, 1])
  batch = sampler.global_batch(step)
  bucket = image_batches.bucket_shape(batch, images, geometry)
  assert bucket == (512, 512)  # max(352, 464) -> 512, max(512, 352) -> 512
  arrays = image_batches.assemble(batch, images, geometry, bucket)
  assert arrays['image'].shape == (2, 512, 512, 3)
  # Image 0 unflipped at the top-left, the mean colour around it.
  np.testing.assert_array_equal(arrays['image'][0, :352, :512],
                                resize_to_scale(first.image, 344, 16))
  np.testing.assert_array_equal(arrays['image'][0, 352:],
                                np.broadcast_to([124, 116, 104], (160, 512, 3)))
  np.testing.assert_array_equal(arrays['image'][1, :464, :352],
                                resize_to_scale(second.image[:, ::-1].copy(),
                                                344, 16))
  for row, (item, (rh, rw), flipped) in enumerate(
      [(first, (352, 512), False), (second, (464, 352), True)]):
    height, width = item.image.shape[:2]
    cells_h = architectures.conv5_size(rh)
    cells_w = architectures.conv5_size(rw)
    for k in np.flatnonzero(batch.valid[row]):
      box = item.regions.boxes[batch.regions[row, k]].astype(np.float64)
      gt = item.gt_boxes[max(item.regions.gt_index[batch.regions[row, k]], 0)]
      if flipped:  # x0' = W - x1, x1' = W - x0
        box = np.array([box[0], width - box[3], box[2], width - box[1]])
        gt = np.array([gt[0], width - gt[3], gt[2], width - gt[1]])
      fy, fx = rh / height, rw / width
      ys = conv5_cells(box[0] * fy, box[2] * fy, cells_h)
      xs = conv5_cells(box[1] * fx, box[3] * fx, cells_w)
      # The map ends where the image does: cells past it are clamped off.
      np.testing.assert_array_equal(
          arrays['cells'][row, k], [ys.start, xs.start, min(ys.stop, cells_h),
                                    min(xs.stop, cells_w)])
      if batch.labels[row, k] > 0:
        deltas = arrays['target'][row, k] * np.array([0.1, 0.1, 0.2, 0.2])
        np.testing.assert_allclose(box_lib.decode_deltas(box, deltas), gt,
                                   atol=1e-3)
      else:
        assert not arrays['target'][row, k].any()
  assert batch.labels[0].max() == 3 and batch.labels[1].max() == 1
