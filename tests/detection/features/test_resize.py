"""The detector's jax.numpy bilinear resize against TensorFlow's
(`image_ops.resize_bilinear`, the independent reference): within the
rounding of fused multiply-adds, one grey level at most after rounding and
rarely; padding never read; one compilation per padded and output shape."""

import numpy as np

from sppnet_jax.core import compile_count
from sppnet_jax.core.data import image_ops
from sppnet_jax.detection.features import resize


def _cases(count, seed=0):
  rng = np.random.default_rng(seed)
  for _ in range(count):
    height, width = (int(v) for v in rng.integers(1, 120, 2))
    shape = tuple(int(v) for v in rng.integers(1, 15, 2) * 16)
    yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8), shape


def _padded(image, fill=0, to=(128, 128)):
  out = np.full(to + (3,), fill, np.uint8)
  out[:image.shape[0], :image.shape[1]] = image
  return out


def test_resize_is_tensorflows_bilinear_to_rounding():
  worst, changed, total = 0.0, 0, 0
  for image, shape in _cases(25):
    want = image_ops.resize_bilinear(image, shape, False).numpy()
    got = np.asarray(resize.resize_bilinear(_padded(image), *image.shape[:2],
                                            shape))
    worst = max(worst, float(np.abs(got - want).max()))
    rounded = np.asarray(resize.resize_to_uint8(_padded(image),
                                                *image.shape[:2], shape))
    diff = np.abs(rounded.astype(int) - np.round(want).astype(int))
    assert diff.max() <= 1
    changed += int(np.sum(diff)); total += diff.size
  assert worst < 0.01, worst
  assert changed <= total * 1e-4, (changed, total)


def test_padding_is_never_read_and_sizes_share_a_compilation():
  with compile_count.compilations() as compiled:
    outputs = []
    for image, _ in _cases(6, seed=1):
      for fill in (0, 255):
        outputs.append(np.asarray(resize.resize_to_uint8_jitted(
            _padded(image, fill, (120, 130)), np.int32(image.shape[0]),
            np.int32(image.shape[1]), (48, 64))))
      np.testing.assert_array_equal(outputs[-2], outputs[-1])
  assert compiled.count('resize_to_uint8') == 1, compiled


def test_padded_side():
  assert [resize.padded_side(s) for s in (1, 64, 65, 500)] == [64, 64, 128, 512]
