"""Window -> conv5 projection and the per-box scale, on hand-computed cases.

ZF-5's conv5 cell j is centred on image coordinate 20.5 + 16 j (pixel 20 + 16 j):
see test_receptive_field_centres for the arithmetic."""

import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax.core import architectures
from sppnet_jax.core.projection import choose_scales, project_boxes


def test_receptive_field_centres():
  # conv1 7/2 pad 1: (7-1)/2 - 1 = 2 pixels; pool1 3/2: 1 step of 2; conv2 5/2:
  # 2 steps of 4; pool2 3/2: 1 step of 8; conv3-5 3/1 pad 1: 0.
  assert architectures.receptive_field_centres() == (0.5 + 2 + 2 + 8 + 8, 16)


def _cells(boxes, size, rule):
  return project_boxes(np.array(boxes, np.float32), size, size, rule).tolist()


@pytest.mark.parametrize('rule', ['paper', 'authors_code'])
def test_a_224_window_at_scale_224_covers_the_whole_13x13_map(rule):
  assert architectures.conv5_size(224) == 13
  assert _cells([[0, 0, 224, 224]], 13, rule) == [[0, 0, 13, 13]]


@pytest.mark.parametrize('rule', ['paper', 'authors_code'])
def test_windows_at_scale_688(rule):
  assert architectures.conv5_size(688) == 42
  # Rows [100, 300): cell 5 (centre 100.5) is the first inside, cell 17 (centre
  # 292.5) the last; columns [200, 520): cells 12 (212.5) .. 31 (516.5).
  # The whole image is the whole map.
  assert _cells([[100, 200, 300, 520], [0, 0, 688, 688]], 42, rule) == [
      [5, 12, 18, 32], [0, 0, 42, 42]]


def test_the_rules_differ_by_the_code_s_slack():
  # A left edge at 21: cell 0's centre (20.5) is half a pixel outside. The
  # paper's rule starts at cell 1 (floor(0.5 / 16) + 1); the code's at cell 0
  # (floor((22 - 6.5) / 16) + 1 = 1, 1-based).
  assert _cells([[0, 21, 50, 50]], 42, 'paper') == [[0, 1, 2, 2]]
  assert _cells([[0, 21, 50, 50]], 42, 'authors_code') == [[0, 0, 2, 2]]


@pytest.mark.parametrize('rule', ['paper', 'authors_code'])
def test_boxes_at_the_image_border_clamp_to_the_map(rule):
  # [680, 688) at 688: floor((680 - 20.5) / 16) + 1 = 42 is past the last cell
  # (41, centre 676.5): clamped, it keeps cell 41.
  assert _cells([[0, 680, 688, 688], [-30, -30, 10, 10]], 42, rule) == [
      [0, 41, 42, 42], [0, 0, 1, 1]]


def test_one_pixel_and_reversed_boxes_collapse_to_one_cell():
  # Pixel 100 holds cell 5's centre (100.5): [5, 6). Pixel 101 holds none: left
  # floor(80.5 / 16) + 1 = 6 > right ceil(81.5 / 16) - 1 = 5, the midpoint is 5.
  # A reversed box (y0 > y1) collapses the same way: left 18, right 11 -> 14.
  assert _cells([[100, 100, 101, 101], [101, 101, 102, 102],
                 [300, 300, 200, 200]], 42, 'paper') == [
                     [5, 5, 6, 6], [5, 5, 6, 6], [14, 14, 15, 15]]


def test_numpy_and_jax_give_the_same_cells():
  boxes = np.random.default_rng(0).uniform(-50, 700, (200, 4)).astype(np.float32)
  for rule in ('paper', 'authors_code'):
    np.testing.assert_array_equal(
        np.asarray(project_boxes(jnp.asarray(boxes), 42, 35, rule)),
        project_boxes(boxes, 42, 35, rule))


def test_the_scale_of_each_box():
  scales = (480, 576, 688, 864, 1200)
  # 375 x 500 image; a 100 x 100 box has sides 128, 153.6, 183.5, 230.4, 320
  # at these scales: 230.4 is closest to 224 (area) and to 208 (side).
  box = np.array([[0, 0, 100, 100]], np.float32)
  assert choose_scales(box, 375, 500, scales).tolist() == [3]
  assert choose_scales(box, 375, 500, scales, 'authors_code').tolist() == [3]
  # A side of 190 at 480 is 237.5 at 600: by area |190^2 - 224^2| = 14076 >
  # |237.5^2 - 224^2| = 6230 (the paper picks 600); by side |190 - 208| = 18 <
  # 29.5 (the code picks 480).
  box = np.array([[0, 0, 190, 190]], np.float32)
  assert choose_scales(box, 480, 640, (480, 600)).tolist() == [1]
  assert choose_scales(box, 480, 640, (480, 600), 'authors_code').tolist() == [0]


# Overfeat-5/7: cell j centred on 8.5 + 12 j (see test_architectures'
# test_receptive_field_centres); at 688 the map is 57 x 57 (conv1 (688-7)//2+1
# = 341, pool1 floor(338/3)+1 = 113, conv2 113, pool2 ceil(111/2)+1 = 57).


@pytest.mark.parametrize('network', ['overfeat5', 'overfeat7'])
@pytest.mark.parametrize('rule', ['paper', 'authors_code'])
def test_overfeat_windows_follow_its_stride_of_12(network, rule):
  assert architectures.conv5_size(224, network) == 18
  assert architectures.conv5_size(688, network) == 57
  boxes = np.array([[0, 0, 224, 224]], np.float32)
  assert project_boxes(boxes, 18, 18, rule, network).tolist() == [[0, 0, 18, 18]]
  # Rows [100, 300): cell 8 (centre 104.5) is the first inside (7: 92.5), cell
  # 24 (296.5) the last (25: 308.5); columns [200, 520): cells 16 (200.5) ..
  # 42 (512.5). The whole image is the whole map: ceil(679.5 / 12) - 1 = 56.
  # The code's rule (c1 = 9): floor((101 + 1.5) / 12) = 8, ceil((300 + 4.5) /
  # 12) - 2 = 24; 16 and 42 likewise.
  boxes = np.array([[100, 200, 300, 520], [0, 0, 688, 688]], np.float32)
  assert project_boxes(boxes, 57, 57, rule, network).tolist() == [
      [8, 16, 25, 43], [0, 0, 57, 57]]


def test_overfeat_scale_choice_targets_its_own_map():
  # The code's rule aims at the side of the 224 input's map in pixels:
  # 18 * 12 = 216 for Overfeat (ZF-5: 13 * 16 = 208). A side of 190 at 480 is
  # 237.5 at 600 and 285 at 720: |190 - 216| = 26 > |237.5 - 216| = 21.5 picks
  # 600; ZF-5 picks 480 (18 < 29.5); a wrong stride of 16 (288) would pick 720,
  # a wrong map of 13 (156) 480.
  box = np.array([[0, 0, 190, 190]], np.float32)
  scales = (480, 600, 720)
  assert choose_scales(box, 480, 640, scales, 'authors_code',
                       architecture='overfeat7').tolist() == [1]
  assert choose_scales(box, 480, 640, scales, 'authors_code').tolist() == [0]
