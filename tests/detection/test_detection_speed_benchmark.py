"""The R-CNN side of benchmarks/detection_speed.py against hand-computed
values and a per-pixel loop, and its MAC counts against the figures of the
paper's comparison (1.18 G per 224 window; ~2.36 T, ~0.15 T and ~0.24 T per
image for R-CNN, SPP-net at one scale and at five)."""

import numpy as np
import pytest

from benchmarks import detection_speed
from sppnet_jax import SPPNet


def test_context_boxes_leave_16_of_224_pixels_of_context_on_each_side():
  got = detection_speed.context_boxes(np.array([[10, 20, 110, 70]], np.float32))
  grow = 224 / 192  # the box fills the inner 192 pixels of the warped 224
  expected = [60 - 50 * grow, 45 - 25 * grow, 60 + 50 * grow, 45 + 25 * grow]
  np.testing.assert_allclose(got[0], expected, rtol=1e-6)


def _warp_reference(image, window, size):
  """Output pixel (i, j) sampled bilinearly at the centre of its span, with
  zeros outside the image, one pixel at a time."""
  height, width, channels = image.shape
  y0, x0, y1, x1 = window
  out = np.zeros((size, size, channels))
  for i in range(size):
    y = y0 + (i + 0.5) * (y1 - y0) / size - 0.5
    for j in range(size):
      x = x0 + (j + 0.5) * (x1 - x0) / size - 0.5
      for yy in (int(np.floor(y)), int(np.floor(y)) + 1):
        for xx in (int(np.floor(x)), int(np.floor(x)) + 1):
          weight = (1 - abs(y - yy)) * (1 - abs(x - xx))
          if 0 <= yy < height and 0 <= xx < width:
            out[i, j] += weight * image[yy, xx]
  return out


def test_warp_matches_a_per_pixel_bilinear_loop():
  rng = np.random.default_rng(0)
  image = rng.normal(size=(9, 11, 2)).astype(np.float32)
  windows = np.array([[0, 0, 9, 11],  # the whole image
                      [2.5, 3.25, 4.0, 9.5],  # inside, stretched
                      [-3, -2, 5, 6],  # over the top-left corner
                      [6, 8, 14, 15],  # over the bottom-right corner
                      [4, 5, 4.5, 5.5]], np.float32)  # under one pixel
  got = np.asarray(detection_speed.warp_windows(image, windows, size=7))
  for window, warped in zip(windows, got):
    np.testing.assert_allclose(warped, _warp_reference(image, window, 7),
                               rtol=1e-5, atol=1e-5, err_msg=str(window))


@pytest.mark.parametrize('scales,expected_tera', [
    (None, 2.36), (detection_speed.ONE_SCALE, 0.15),
    (detection_speed.FIVE_SCALES, 0.24)])
def test_macs_per_image_are_the_paper_comparison_s(scales, expected_tera):
  model = SPPNet(num_classes=21)
  macs = detection_speed.macs_per_image(model, scales, 2000, 375, 500)
  fc = 12800 * 4096 + 4096 * 4096 + 4096 * 21  # fc6-fc8 of one box
  assert macs['fc'] == 2000 * fc
  assert abs((macs['conv'] + macs['fc']) / 1e12 - expected_tera) < 0.01


def test_svd_rows_count_the_factored_fc6_and_fc7():
  # Fast R-CNN's ranks: fc6 1024 (12800 + 4096), fc7 256 (4096 + 4096), fc8
  # whole: about 19.5 M per box against 69 M.
  model = SPPNet(num_classes=21)
  per_box = 1024 * (12800 + 4096) + 256 * (4096 + 4096) + 4096 * 21
  assert per_box == 19_484_672
  macs = detection_speed.macs_per_image(model, detection_speed.ONE_SCALE,
                                        2000, 375, 500, (1024, 256))
  whole = detection_speed.macs_per_image(model, detection_speed.ONE_SCALE,
                                         2000, 375, 500)
  assert macs['fc'] == 2000 * per_box
  assert macs['conv'] == whole['conv']
  # A rank that keeps a layer whole counts it whole.
  assert detection_speed.macs_per_image(
      model, detection_speed.ONE_SCALE, 2000, 375, 500,
      (4096, 4096))['fc'] == whole['fc']
