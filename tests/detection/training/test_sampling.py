"""Region labels against a brute-force loop written here (its own IoU in
Python floats on integer boxes, so every value is decided alike) on random
boxes with ties, copies, zero-area and reversed boxes, images without objects
and difficult objects; hand-computed IoU; mini-batch counts, thresholds and
fractions counted exactly; determinism from (seed, step); process shares whose
union is the 1-process batch; flips by hand and twice."""

import itertools

import numpy as np
import pytest

from sppnet_jax.detection.boxes import flip_left_right as flip_boxes
from sppnet_jax.detection.training import sampling
from sppnet_jax.detection.training.sampling import (RegionLabels,
                                                    RegionSampler,
                                                    label_regions)
from sppnet_jax.errors import ConfigError, DataError


def _iou(a, b):
  """(y0, x0, y1, x1) boxes, continuous pixels, no +1; 0 for an empty union."""
  area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
  area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
  h = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
  w = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
  union = area_a + area_b - h * w
  return h * w / union if union > 0 else 0.0


def _brute_force(proposals, gt, gt_labels, difficult, add_gt, use_difficult):
  used = [g for g in range(len(gt)) if use_difficult or not difficult[g]]
  regions = ([gt[g] for g in used] if add_gt else []) + list(proposals)
  out = []
  for box in regions:
    best_iou, best_g = 0.0, -1
    for g in used:  # strictly greater: the first box wins ties
      iou = _iou(box, gt[g])
      if iou > best_iou:
        best_iou, best_g = iou, g
    label = gt_labels[best_g] + 1 if best_g >= 0 else 0
    out.append((box, best_iou, label, best_g))
  return out, len(used) if add_gt else 0


def _random_image(rng, n_proposals, n_gt):
  """Integer boxes in a 30 x 30 image; gt with duplicates of different
  classes, proposals with copies of gt, zero-area and reversed boxes."""
  def boxes(n):
    yx = rng.integers(0, 25, (n, 2))
    hw = rng.integers(1, 15, (n, 2))
    return np.concatenate([yx, yx + hw], 1).astype(np.float64)
  gt = boxes(n_gt)
  if n_gt >= 2:
    gt[1] = gt[0]  # identical boxes: ties, perhaps of different classes
  if n_gt >= 3:
    gt[2, 2] = gt[2, 0]  # a zero-area ground-truth box
  labels = rng.integers(0, 4, n_gt)
  difficult = rng.uniform(size=n_gt) < 0.3
  proposals = boxes(n_proposals)
  kind = rng.integers(0, 8, n_proposals)
  if n_gt:
    copies = np.flatnonzero(kind == 0)
    proposals[copies] = gt[rng.integers(0, n_gt, copies.size)]
  proposals[kind == 1, 3] = proposals[kind == 1, 1]  # zero width
  rev = kind == 2
  proposals[rev] = proposals[rev][:, [2, 3, 0, 1]]
  return proposals, gt, labels, difficult


@pytest.mark.parametrize('add_gt, use_difficult',
                         list(itertools.product([True, False], repeat=2)))
def test_labels_match_brute_force(add_gt, use_difficult):
  rng = np.random.default_rng(7)
  for n_gt in (0, 1, 2, 3, 6, 6, 6):
    proposals, gt, labels, difficult = _random_image(rng, 60, n_gt)
    if n_gt == 6:
      difficult[:] = rng.uniform() < 0.3  # sometimes every object difficult
    got = label_regions(proposals, gt, labels, difficult,
                        add_ground_truth=add_gt, use_difficult=use_difficult)
    want, n_added = _brute_force(proposals.tolist(), gt.tolist(),
                                 labels.tolist(), difficult.tolist(), add_gt,
                                 use_difficult)
    assert got.boxes.shape == (len(want), 4) and got.boxes.dtype == np.float32
    np.testing.assert_array_equal(got.boxes, [w[0] for w in want])
    np.testing.assert_array_equal(got.max_iou, [w[1] for w in want])
    np.testing.assert_array_equal(got.labels, [w[2] for w in want])
    np.testing.assert_array_equal(got.gt_index, [w[3] for w in want])
    np.testing.assert_array_equal(got.is_gt, np.arange(len(want)) < n_added)


def test_labels_by_hand():
  gt = [[0, 0, 10, 10], [0, 20, 10, 30], [0, 20, 10, 30]]
  proposals = [[0, 0, 10, 5],     # half of gt 0: IoU 50 / 100
               [0, 5, 10, 15],    # 50 / 150 with gt 0
               [0, 10, 10, 20],   # touches gt 0 and 1: IoU 0
               [0, 20, 10, 30],   # both copies: first (gt 1, label 7 + 1)
               [5, 5, 5, 9],      # zero area
               [10, 10, 0, 0]]    # reversed
  got = label_regions(proposals, gt, [2, 7, 3], [False, False, False])
  np.testing.assert_allclose(got.max_iou, [1, 1, 1, .5, 1 / 3, 0, 1, 0, 0])
  np.testing.assert_array_equal(got.labels, [3, 8, 8, 3, 3, 0, 8, 0, 0])
  np.testing.assert_array_equal(got.gt_index, [0, 1, 1, 0, 0, -1, 1, -1, -1])
  np.testing.assert_array_equal(got.is_gt, [1, 1, 1, 0, 0, 0, 0, 0, 0])
  # The second copy difficult and dropped: its own proposal still matches gt 1;
  # gt 1 difficult and dropped: the proposal goes to gt 2 (label 3 + 1).
  got = label_regions(proposals, gt, [2, 7, 3], [False, True, False],
                      use_difficult=False)
  np.testing.assert_array_equal(got.labels, [3, 4, 3, 3, 0, 4, 0, 0])
  np.testing.assert_array_equal(got.gt_index, [0, 2, 0, 0, -1, 2, -1, -1])


def test_difficult_objects_are_ground_truth_by_default():
  # As R-CNN's and SPP-net's training code: the difficult box is added and
  # matched like any other.
  got = label_regions([[0, 0, 10, 8]], [[0, 0, 10, 10]], [4], [True])
  np.testing.assert_array_equal(got.labels, [5, 5])
  np.testing.assert_allclose(got.max_iou, [1, 0.8])


def test_image_without_objects_is_background():
  got = label_regions([[0, 0, 5, 5], [1, 1, 4, 4]], np.zeros((0, 4)), [], [])
  np.testing.assert_array_equal(got.max_iou, [0, 0])
  np.testing.assert_array_equal(got.labels, [0, 0])
  np.testing.assert_array_equal(got.gt_index, [-1, -1])
  assert not got.is_gt.any()
  empty = label_regions(np.zeros((0, 4)), [[0, 0, 5, 5]], [1], [False],
                        add_ground_truth=False)
  assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)


def test_labels_unchanged_by_flipping_everything():
  rng = np.random.default_rng(3)
  proposals, gt, labels, difficult = _random_image(rng, 80, 5)
  a = label_regions(proposals, gt, labels, difficult)
  b = label_regions(flip_boxes(proposals, 40), flip_boxes(gt, 40), labels,
                    difficult)
  np.testing.assert_array_equal(a.max_iou, b.max_iou)
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_array_equal(a.gt_index, b.gt_index)


def test_bad_labelling_input():
  with pytest.raises(DataError, match='labels and'):
    label_regions([[0, 0, 1, 1]], [[0, 0, 1, 1]], [0, 1], [False])
  with pytest.raises(DataError, match='0..K-1'):
    label_regions([[0, 0, 1, 1]], [[0, 0, 1, 1]], [-1], [False])
  with pytest.raises(DataError, match=r'\(N, 4\)'):
    label_regions([[0, 0, 1]], [[0, 0, 1, 1]], [0], [False])
  with pytest.raises(DataError, match='NaN'):
    label_regions([[0, 0, np.nan, 1]], [[0, 0, 1, 1]], [0], [False])


def test_flip_by_hand_and_twice():
  # Width 10: columns 2..6 ([2, 7)) become columns 3..7 ([3, 8)).
  np.testing.assert_array_equal(flip_boxes([[1, 2, 5, 7]], 10), [[1, 3, 5, 8]])
  # Pixel column 0 becomes column 9; the whole image stays the whole image.
  np.testing.assert_array_equal(flip_boxes([[0, 0, 1, 1], [0, 0, 6, 10]], 10),
                                [[0, 9, 1, 10], [0, 0, 6, 10]])
  rng = np.random.default_rng(0)
  b = rng.integers(0, 8 * 500, (50, 3, 4)) / 8  # exact in float32
  np.testing.assert_array_equal(flip_boxes(flip_boxes(b, 500), 500), b)
  np.testing.assert_array_equal(flip_boxes(b, 500)[..., [0, 2]], b[..., [0, 2]])


def _labels(max_iou, labels=None):
  """RegionLabels with the given IoU (only IoU and labels matter to the
  sampler); labels default to 1 + index % 20 where IoU > 0."""
  max_iou = np.asarray(max_iou, np.float64)
  n = max_iou.size
  if labels is None:
    labels = np.where(max_iou > 0, 1 + np.arange(n) % 20, 0)
  return RegionLabels(np.zeros((n, 4), np.float32), np.zeros(n, bool), max_iou,
                      np.asarray(labels, np.int32),
                      np.where(max_iou > 0, 0, -1).astype(np.int32))


def _random_dataset(rng, images, per_image):
  """IoU values on and around the thresholds, many per image."""
  values = np.array([0, 0.05, 0.0999, 0.1, 0.3, 0.42, 0.4999, 0.5, 0.7, 1.0])
  return [_labels(rng.choice(values, rng.integers(0, per_image + 1)))
          for _ in range(images)]


def _check_batch(batch, dataset, fg_count, bg_count, fg_threshold=0.5,
                 bg_range=(0.1, 0.5)):
  iou = np.array([dataset[i].max_iou[r] for i, r in
                  zip(batch.images, batch.regions)])
  region_label = np.array([dataset[i].labels[r] for i, r in
                           zip(batch.images, batch.regions)])
  fg = batch.labels > 0
  assert fg.sum() == fg_count and (~fg).sum() == bg_count
  assert np.all(iou[fg] >= fg_threshold)
  np.testing.assert_array_equal(batch.labels[fg], region_label[fg])
  assert np.all((iou[~fg] >= bg_range[0]) & (iou[~fg] < bg_range[1]))
  assert np.all(iou[~fg] < fg_threshold)
  pairs = set(zip(batch.images.tolist(), batch.regions.tolist()))
  assert len(pairs) == len(batch.images)  # no region twice in a step


def test_counts_fractions_and_thresholds():
  rng = np.random.default_rng(1)
  dataset = _random_dataset(rng, 40, 30)
  sampler = RegionSampler(dataset, batch_size=128, seed=5)
  for step in range(20):
    _check_batch(sampler(step), dataset, 32, 96)
  # floor(10 * 0.25) = 2; floor(100 * 0.29) = 29 despite 28.999... in floats.
  _check_batch(RegionSampler(dataset, batch_size=10)(0), dataset, 2, 8)
  _check_batch(RegionSampler(dataset, batch_size=100, positive_fraction=0.29)(
      3), dataset, 29, 71)
  # Other thresholds; a region above fg_threshold is never background.
  _check_batch(RegionSampler(dataset, batch_size=64, fg_threshold=0.4,
                             bg_range=(0.0, 0.45))(1), dataset, 16, 48, 0.4,
               (0.0, 0.45))
  # IoU 0.5 with fg_threshold 0.7: below it, but not below bg_range's high end.
  strict = RegionSampler(dataset, batch_size=40, fg_threshold=0.7)
  for step in range(5):
    _check_batch(strict(step), dataset, 10, 30, 0.7, (0.1, 0.5))
  # Counted by hand: 0.5, 0.7, 1.0 are foreground, 0.1, 0.3, 0.4999 background.
  small = [_labels([0.5, 0.0999, 0.1, 0.4999]), _labels([1.0, 0.3, 0.05])]
  s = RegionSampler(small, batch_size=5, positive_fraction=0.4)
  assert (s.num_foreground, s.num_background) == (2, 3)
  batch = s(0)
  assert sorted(zip(batch.images.tolist(), batch.regions.tolist())) == [
      (0, 0), (0, 2), (0, 3), (1, 0), (1, 1)]


def test_shortages_fill_with_the_other_kind():
  few_fg = [_labels([0.6] * 5 + [0.2] * 300)]
  _check_batch(RegionSampler(few_fg)(0), few_fg, 5, 123)
  few_bg = [_labels([0.6] * 300 + [0.2] * 10)]
  _check_batch(RegionSampler(few_bg)(0), few_bg, 118, 10)
  no_fg = [_labels([0.2] * 200), _labels([])]
  _check_batch(RegionSampler(no_fg)(4), no_fg, 0, 128)
  with pytest.raises(DataError, match='fewer than one batch'):
    RegionSampler([_labels([0.6] * 60 + [0.2] * 60 + [0.0] * 100)])


def _reference_batch(dataset, *, seed, step, batch_size=128, fraction=0.25,
                     fg_threshold=0.5, bg_range=(0.1, 0.5)):
  """Step `step`'s global batch from the module docstring's rules, written
  here: candidates listed image by image, floor(batch_size * fraction)
  foreground drawn without replacement, then background, then one coin per
  region, all from default_rng([seed, stream tag, step])."""
  fg = [(i, r) for i, d in enumerate(dataset)
        for r in np.flatnonzero(d.max_iou >= fg_threshold)]
  bg = [(i, r) for i, d in enumerate(dataset)
        for r in np.flatnonzero((d.max_iou >= bg_range[0])
                                & (d.max_iou < bg_range[1])
                                & (d.max_iou < fg_threshold))]
  fg_count = min(int(batch_size * fraction), len(fg))
  bg_count = min(batch_size - fg_count, len(bg))
  fg_count = batch_size - bg_count
  rng = np.random.default_rng([seed, 0x5A3B1E, step])
  chosen = ([fg[k] for k in rng.choice(len(fg), fg_count, replace=False)]
            + [bg[k] for k in rng.choice(len(bg), bg_count, replace=False)])
  flips = rng.random(batch_size) < 0.5
  labels = [int(dataset[i].labels[r]) if n < fg_count else 0
            for n, (i, r) in enumerate(chosen)]
  return sampling.RegionBatch(np.array([i for i, _ in chosen]),
                              np.array([r for _, r in chosen]),
                              np.array(labels), flips,
                              np.arange(batch_size))


def test_deterministic_from_seed_and_step():
  rng = np.random.default_rng(2)
  dataset = _random_dataset(rng, 30, 40)
  a = RegionSampler(dataset, seed=11)
  b = RegionSampler(dataset, seed=11)

  def key(batch):
    return (batch.images.tolist(), batch.regions.tolist(),
            batch.labels.tolist(), batch.flips.tolist())

  # Steps in any order, from a fresh sampler (a resumed run): the same batches.
  first = [key(a(s)) for s in range(6)]
  assert [key(b(s)) for s in reversed(range(6))] == first[::-1]
  assert key(_reference_batch(dataset, seed=11, step=4)) == first[4]
  assert len({str(k) for k in first}) == 6
  assert key(RegionSampler(dataset, seed=12)(0)) != first[0]


@pytest.mark.parametrize('process_count', [1, 2, 4, 8])
def test_process_shares_make_the_global_batch(process_count):
  rng = np.random.default_rng(4)
  dataset = _random_dataset(rng, 30, 40)
  sampler = RegionSampler(dataset, seed=3)
  for step in (0, 9):
    whole = sampler(step)
    shares = [sampler(step, p, process_count) for p in range(process_count)]
    positions = np.concatenate([s.positions for s in shares])
    assert sorted(positions.tolist()) == list(range(128))  # disjoint, complete
    for field in ('images', 'regions', 'labels', 'flips'):
      merged = np.empty_like(getattr(whole, field))
      merged[positions] = np.concatenate([getattr(s, field) for s in shares])
      np.testing.assert_array_equal(merged, getattr(whole, field))
    fg = [int((s.labels > 0).sum()) for s in shares]
    assert sum(fg) == 32 and max(fg) - min(fg) <= 1
    assert all(len(s.images) == 128 // process_count for s in shares)


def test_draws_cover_candidates_evenly():
  # 64 foreground candidates in 8 images, 8 drawn a step for 1,000 steps:
  # each expected 125 times (sd about 10.5); 64 background candidates, 24 a
  # step: 375 each on average, exactly; never a non-candidate.
  dataset = [_labels([0.6] * 8 + [0.2] * 8 + [0.05] * 3) for _ in range(8)]
  sampler = RegionSampler(dataset, batch_size=32, seed=9)
  counts = np.zeros((8, 19), int)
  flips = 0
  for step in range(1000):
    batch = sampler(step)
    np.add.at(counts, (batch.images, batch.regions), 1)
    flips += batch.flips.sum()
  fg, bg = counts[:, :8], counts[:, 8:16]
  assert fg.min() > 65 and fg.max() < 185
  assert abs(bg.mean() - 375) < 1e-9 and bg.min() > 300 and bg.max() < 450
  assert not counts[:, 16:].any()
  assert abs(flips / 32000 - 0.5) < 0.02
  no_flip = RegionSampler(dataset, batch_size=32, flip=False)
  assert not no_flip(0).flips.any()


def test_bad_sampler_config():
  dataset = [_labels([0.6] * 200 + [0.2] * 200)]
  for kwargs in ({'batch_size': 0}, {'positive_fraction': 1.5},
                 {'fg_threshold': 0.0}, {'bg_range': (0.5, 0.1)},
                 {'seed': -1}):
    with pytest.raises(ConfigError):
      RegionSampler(dataset, **kwargs)
  sampler = RegionSampler(dataset)
  with pytest.raises(ConfigError, match='multiple'):
    sampler(0, 0, 3)
  with pytest.raises(ConfigError, match='process_index'):
    sampler(0, 2, 2)
  with pytest.raises(ConfigError, match='step'):
    sampler(-1)
