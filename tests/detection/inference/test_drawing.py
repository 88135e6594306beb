"""Drawing detections: outline pixels, label tags, clipping and file output,
checked against hand-worked pixel positions."""

import os

import cv2
import numpy as np
import pytest

from sppnet_jax.detection.inference import drawing as visualize

NAMES = ['dog', 'cat', 'person']


def _black(height=64, width=80):
  return np.zeros((height, width, 3), np.uint8)


def _is(image, color):
  """Per-pixel: the pixel is exactly `color`."""
  return np.all(image == np.asarray(color, np.uint8), axis=-1)


def _colour_of(class_index):
  """The class's colour as drawn: a zero-width-interior box's bottom row."""
  out = visualize.draw_detections(_black(), [[40, 20, 60, 50]], [class_index],
                                  [0.5], [f'c{i}' for i in range(20)],
                                  line_width=1)
  return tuple(int(v) for v in out[59, 35])


def test_outline_lies_on_the_box_outer_pixels():
  # (y0, x0, y1, x1) = (10, 20, 30, 50) covers rows 10..29, columns 20..49.
  image = _black()
  out = visualize.draw_detections(image, [[10, 20, 30, 50]], [1], [0.87],
                                  NAMES, line_width=1)
  color = out[29, 35]
  assert color.any() and color.max() - color.min() >= 100  # saturated
  assert _is(out[10, 20:50], color).all()
  assert _is(out[29, 20:50], color).all()
  assert _is(out[10:30, 20], color).all()
  # "cat 0.87" is wider than the box: where the tag covers column 49 it also
  # reaches past it, so rows with black right of the box are outline only.
  untagged = [r for r in range(10, 30) if not out[r, 50:].any()]
  assert set(range(25, 30)) <= set(untagged)
  assert _is(out[untagged, 49], color).all()
  # The interior, below the tag: in a 64-pixel image the tag is taller than
  # the 10 rows above the box, so it goes inside, over the box's top rows.
  assert not out[27, 35].any() and not out[25:29, 21:49].any()
  assert not out[5, 5].any() and not out[63, 79].any()
  # Nothing drawn left of or below the box.
  assert not out[:, :20].any() and not out[30:].any()


def test_tag_goes_above_the_box_when_there_is_room():
  out = visualize.draw_detections(_black(), [[40, 20, 60, 50]], [1], [0.87],
                                  NAMES, line_width=1)
  color = out[59, 35]
  for line in (out[40, 20:50], out[59, 20:50], out[40:60, 20], out[40:60, 49]):
    assert _is(line, color).all()  # the whole outline, no tag over it
  assert not out[50, 35].any()
  # The tag: non-black, sitting on the box's top row, from its left column.
  outside = out.copy()
  outside[40:60, 20:50] = 0
  rows, cols = np.nonzero(outside.any(-1))
  assert rows.size and rows.max() == 39 and rows.min() >= 40 - 30
  assert cols.min() == 20 and cols.max() < 80
  tag = out[rows.min():40, cols.min():cols.max() + 1]
  assert tag.any(-1).all()  # filled
  assert _is(out[39, 20], color)
  assert (~_is(tag, color)).any()  # the text, in a contrasting colour
  assert not out[5, 5].any()


def test_input_is_not_modified():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
  before = image.copy()
  out = visualize.draw_detections(image, [[10, 20, 30, 50], [0, 0, 64, 80]],
                                  [0, 2], [0.3, 0.9], NAMES)
  np.testing.assert_array_equal(image, before)
  assert out.dtype == np.uint8 and out.shape == image.shape
  assert not np.array_equal(out, image)


def test_box_partly_outside_is_clipped():
  # Rows 50..99 and columns 60..199 clip to rows 50..63, columns 60..79.
  out = visualize.draw_detections(_black(), [[50, 60, 100, 200]], [0], [0.5],
                                  NAMES, line_width=1)
  color = out[63, 70]
  assert color.any()
  for line in (out[50, 60:80], out[63, 60:80], out[50:64, 60], out[50:64, 79]):
    assert _is(line, color).all()
  assert not out[56, 70].any()
  assert not out[50:, :60].any()
  # A box over the top-left corner: its tag goes inside, still in the image.
  out = visualize.draw_detections(_black(), [[-10, -5, 20, 30]], [0], [0.5],
                                  NAMES, line_width=1)
  assert _is(out[19, 0:30], color).all() and _is(out[0:20, 0], color).all()
  assert not out[20:].any()


@pytest.mark.parametrize('box', [
    [10, 10, 10, 20],      # zero height
    [20, 30, 10, 40],      # reversed
    [70, 10, 80, 20],      # below the image
    [-10, -10, 0, 0],      # above and left: ends where pixel 0 begins
    [10, 80, 20, 90],      # right of the image
    [np.nan, 0, 10, 10],
])
def test_empty_or_outside_box_draws_nothing(box):
  image = _black()
  out = visualize.draw_detections(image, [box], [0], [0.9], NAMES)
  np.testing.assert_array_equal(out, image)


def test_no_detections():
  image = _black()
  out = visualize.draw_detections(image, np.zeros((0, 4)), [], [], NAMES)
  np.testing.assert_array_equal(out, image)
  assert out is not image


def test_higher_scores_are_drawn_on_top():
  box = [40, 20, 60, 50]
  dog, cat = _colour_of(0), _colour_of(1)
  for classes, scores in (([0, 1], [0.9, 0.3]), ([1, 0], [0.3, 0.9])):
    out = visualize.draw_detections(_black(), [box, box], classes, scores,
                                    NAMES, line_width=1)
    assert tuple(out[59, 35]) == dog != cat


def test_line_width_default_and_inward():
  # min(400, 600) / 200 = 2 pixels, drawn from the box's edge inwards.
  out = visualize.draw_detections(_black(400, 600), [[100, 100, 300, 300]],
                                  [0], [0.5], NAMES)
  color = out[299, 200]
  assert _is(out[298:300, 200], color).all() and not out[297, 200].any()
  assert not out[300, 200].any()
  assert _is(out[200, 100:102], color).all() and not out[200, 102].any()
  out = visualize.draw_detections(_black(), [[40, 20, 60, 50]], [0], [0.5],
                                  NAMES, line_width=3)
  assert _is(out[57:60, 35], color).all() and not out[56, 35].any()
  assert not out[60, 35].any()


def test_twenty_classes_have_distinct_fixed_colours():
  colours = [_colour_of(c) for c in range(20)]
  assert len(set(colours)) == 20
  assert all(max(c) - min(c) >= 100 for c in colours)  # saturated
  assert colours == [_colour_of(c) for c in range(20)]  # deterministic


def test_rejects_non_uint8_rgb():
  with pytest.raises(ValueError):
    visualize.draw_detections(np.zeros((8, 8, 3), np.float32), [], [], [],
                              NAMES)
  with pytest.raises(ValueError):
    visualize.draw_detections(np.zeros((8, 8), np.uint8), [], [], [], NAMES)


def test_save_png_round_trips_exactly(tmp_path):
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
  path = tmp_path / 'new' / 'folder' / 'x.png'
  visualize.save_png(str(path), image)
  read = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  np.testing.assert_array_equal(read[..., ::-1], image)  # BGR on disk
  visualize.save_png(str(path), image[::-1].copy())  # replaces
  np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1], image[::-1])
  assert os.listdir(path.parent) == ['x.png']  # no temporary file left


def test_output_name():
  taken = set()
  assert visualize.output_name('photos/a.jpg', taken) == 'a.png'
  assert visualize.output_name('other/a.jpeg', taken) == 'a-2.png'
  assert visualize.output_name('/abs/a.png', taken) == 'a-3.png'
  assert visualize.output_name('b', taken) == 'b.png'
  assert visualize.output_name('dir.v1/c.d.JPG', taken) == 'c.d.png'
  assert taken == {'a.png', 'a-2.png', 'a-3.png', 'b.png', 'c.d.png'}
  assert visualize.output_name('x/a-2.jpg', taken) == 'a-2-2.png'
