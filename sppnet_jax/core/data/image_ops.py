"""Decoding and resizing images in tf.data, the same way on every path.

JPEGs are decoded with the accurate integer IDCT (as PIL, OpenCV and Caffe do),
not TF's default fast one; other formats (PNG, GIF, BMP, also under a .jpg name)
through `tf.io.decode_image`. Resizing is bilinear without antialiasing by
default, like the authors' Caffe pipeline (OpenCV's linear warp); `antialias=True`
filters properly when shrinking, at roughly half the CPU throughput.
"""

import numpy as np
import tensorflow as tf

def read(data, is_path: bool):
  """The encoded bytes of a record: read from the file if `data` is a path."""
  return tf.io.read_file(data) if is_path else data


def decode_full(image_bytes):
  """Any supported format to uint8 RGB (JPEG decoded like PIL and Caffe)."""
  return tf.cond(
      tf.io.is_jpeg(image_bytes),
      lambda: tf.io.decode_jpeg(image_bytes, channels=3,
                                dct_method='INTEGER_ACCURATE'),
      lambda: tf.io.decode_image(image_bytes, channels=3,
                                 expand_animations=False))


def decode_record(data, is_path: bool):
  """A record's image (read from its path first if `is_path`) as uint8 RGB."""
  return decode_full(read(data, is_path))


def decode_image_file(path: str) -> np.ndarray:
  """A JPEG/PNG/GIF/BMP file (whatever its name says) as uint8 RGB HWC; raises
  tf.errors.InvalidArgumentError for a file that is not a readable image."""
  return decode_full(tf.io.read_file(path)).numpy()


def resize_bilinear(image, size, antialias: bool):
  """Bilinear resize to float32. TF's kernel is ~1.5x faster on float32 than
  on uint8 input, even counting the cast, and bitwise the same."""
  return tf.image.resize(tf.cast(image, tf.float32), size, method='bilinear',
                         antialias=antialias)


def resize_short_side(image, short_side, antialias: bool = False):
  """Resizes an HWC image so that its short side is `short_side` and the long
  side keeps the aspect ratio (rounded); returns float32."""
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  short = tf.minimum(h, w)
  new_h = tf.where(h == short, short_side, (h * short_side + short // 2) // short)
  new_w = tf.where(w == short, short_side, (w * short_side + short // 2) // short)
  return resize_bilinear(image, tf.stack([new_h, new_w]), antialias)


def center_crop(image, size: int):
  """The size x size center of an HWC image at least that large."""
  shape = tf.shape(image)
  top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
  image = image[top:top + size, left:left + size]
  image.set_shape([size, size, 3])
  return image


def to_uint8(image):
  """Float pixels (0..255 scale) rounded and clipped to uint8."""
  return round_to_uint8(tf.clip_by_value(image, 0.0, 255.0))


def round_to_uint8(image):
  """`to_uint8` of pixels already in [0, 255], such as bilinear resizes of
  uint8 images: the clip (a third of the cost) would change nothing."""
  return tf.cast(tf.round(image), tf.uint8)


def full_image_shape(height, width, short_side, step):
  """(height, width) of the full-image view: the short side at `short_side`,
  the aspect kept, each side rounded to a multiple of `step` (at least `step`).
  Works on Python ints and on tensors alike (float64, round half to even)."""
  h = tf.cast(height, tf.float64)
  w = tf.cast(width, tf.float64)
  scale = tf.cast(short_side, tf.float64) / tf.minimum(h, w)
  snap = lambda side: tf.maximum(
      step, tf.cast(tf.round(side * scale / step), tf.int32) * step)
  return snap(h), snap(w)


def full_image_size(height: int, width: int, short_side: int,
                    step: int) -> tuple[int, int]:
  """`full_image_shape` of Python ints, as Python ints (for host code)."""
  return tuple(int(side) for side in full_image_shape(height, width, short_side,
                                                      step))
