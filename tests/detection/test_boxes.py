"""Box conventions: hand-computed conversions at the library's edges."""

import numpy as np

from sppnet_jax.detection import boxes


def test_voc_pixels_are_one_based_and_inclusive():
  # VOC pixels 1..224 across and 11..20 down: 224 wide, 10 high.
  b = boxes.from_voc([[1, 11, 224, 20]])
  np.testing.assert_array_equal(b, [[10, 0, 20, 224]])
  assert boxes.areas(b)[0] == 224 * 10
  np.testing.assert_array_equal(boxes.to_voc(b), [[1, 11, 224, 20]])
  # A one-pixel VOC box (x 5..5, y 7..7) covers [4, 5) x [6, 7).
  np.testing.assert_array_equal(boxes.from_voc([5, 7, 5, 7]), [6, 4, 7, 5])


def test_coco_xywh():
  b = boxes.from_coco([[2.5, 4, 10, 3]])
  np.testing.assert_array_equal(b, [[4, 2.5, 7, 12.5]])
  np.testing.assert_array_equal(boxes.to_coco(b), [[2.5, 4, 10, 3]])
  # The same object in both files: VOC (3, 5, 12, 7) is COCO [2, 4, 10, 3].
  np.testing.assert_array_equal(boxes.from_voc([3, 5, 12, 7]),
                                boxes.from_coco([2, 4, 10, 3]))


def test_clip_and_areas():
  b = np.array([[-3, -2, 5, 50], [10, 10, 12, 9], [40, 0, 45, 4]], np.float32)
  clipped = boxes.clip_to_image(b, 30, 20)
  np.testing.assert_array_equal(
      clipped, [[0, 0, 5, 20], [10, 10, 12, 9], [30, 0, 30, 4]])
  np.testing.assert_array_equal(boxes.areas(clipped), [100, 0, 0])


def test_xyxy_is_the_column_swap():
  np.testing.assert_array_equal(boxes.from_xyxy([[1, 2, 3, 4]]), [[2, 1, 4, 3]])
  np.testing.assert_array_equal(boxes.to_xyxy([[2, 1, 4, 3]]), [[1, 2, 3, 4]])
