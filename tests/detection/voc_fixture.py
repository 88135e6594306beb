"""A fake PASCAL VOC 2007 for tests, prepared offline by the real TFDS builder.

The user's offline route, which these tests exercise (tensorflow-datasets
4.9.10, `voc/2007` v5.0.0): put the two official archives,
VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar, under these names in a
folder M and run

    python -c "import tensorflow_datasets as tfds; tfds.builder('voc/2007',
      data_dir='D').download_and_prepare(download_config=
      tfds.download.DownloadConfig(manual_dir='M'))"

or the CLI `tfds build voc/2007 --data_dir=D --manual_dir=M`, which does the
same but in this TFDS version imports apache_beam and mlcroissant when it
starts, so it needs `pip install apache-beam mlcroissant` first (without them it
stops at `ModuleNotFoundError` before doing anything). TFDS's download manager
looks for a file named as the registered one
(`tensorflow_datasets/url_checksums/voc.txt`: URL, size, sha256, file name) in
M before downloading; if it is there, it hashes it and raises
`NonMatchingChecksumError` unless size and sha256 are the registered ones, then
extracts it (into D/downloads/extracted) and the builder reads it. Nothing is
fetched. (The prepared copy on GCS is not consulted either: GCS is disabled in
this TFDS version, and `try_download_gcs=False` says so anyway.)

`write_voc_archives(M)` writes those two archives with the official names and
layout, from a tiny hand-written VOC 2007: 4 train, 4 val and 5 test JPEGs of
40..90 pixels a side, none square, annotated in the devkit's XML (difficult and
truncated objects, several objects and classes per image, boxes on the image
border, 1-pixel-wide and 1-pixel-tall boxes, an image without objects), with the
ImageSets/Main lists (train, val, trainval; test) and the per-class lists
(`aeroplane_train.txt`, ...) as in the real archives. The JPEGs are made so
that every libjpeg decoder (TensorFlow's INTEGER_FAST default, PIL's
INTEGER_ACCURATE) gives the same pixels, so readers can compare pixels exactly.
It returns what a reader must find, per TFDS split.

The fake archives cannot have the real checksums, so the one departure from the
user's route is where the expected checksums come from:
`fake_archive_checksums(M)` registers, for as long as it is active, the fake
archives' own size and sha256 as the builder class's `url_infos` (the class
attribute TFDS fills from voc.txt; TFDS's own CLI tests override it the same
way). Everything else is the unmodified builder and download manager: the
manual_dir look-up by file name, the checksum validation (now against the fake
values: a changed archive still fails), the extraction, the XML parsing and the
record writing. Outside that context the registered real checksums are in force
again, which `test_voc_builder.py` checks: the fake archives are refused with
`NonMatchingChecksumError`.

`no_network()` makes any socket connection or DNS look-up raise at once (and
records it), so an offline preparation that tried the network fails fast
instead of hanging; `prepare_voc2007` runs under it.

What TFDS stores, and how to get the XML back (the data module converts with
this): `objects/bbox` is [ymin/H, xmin/W, ymax/H, xmax/W] of the XML's 1-based
inclusive integers and the XML's `size`, in float32; `round(v * size)` gives the
integer back exactly (float32's relative error, about 6e-8 per operation, keeps
v * size within 0.01 of the integer for any side up to 10,000 pixels;
`test_voc_builder.py` checks every integer up to 2,048 exhaustively), and the
library's box is then y0 = ymin - 1, y1 = ymax
(`sppnet_jax.detection.boxes.from_voc`). `objects/label` indexes TFDS's 20 class
names (the XML `name`, lower-cased), `objects/pose` its 5 poses (lower-cased),
`objects/is_difficult` and `objects/is_truncated` are the XML flags,
`image/filename` is '<image_id>.jpg', and the stored image is the archive's
JPEG file byte for byte. Examples come in TFDS's order (a hash of the image
id), not the ImageSets order.

Preparing takes a few seconds; callers that need the data more than once should
prepare once per session (or module) and share the data_dir read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import tarfile
from typing import Iterator

import numpy as np
from PIL import Image

YEAR = '2007'
TRAINVAL_ARCHIVE = 'VOCtrainval_06-Nov-2007.tar'
TEST_ARCHIVE = 'VOCtest_06-Nov-2007.tar'
SPLITS = ('train', 'validation', 'test')
# TFDS's (and the devkit's) 20 classes, in label order.
CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
           'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
           'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
_ROOT = f'VOCdevkit/VOC{YEAR}'
_MTIME = 1194307200  # 2007-11-06: fixed, so the archives are byte-identical
_JPEG_QUALITY = 95

# The images, in ImageSets order: (image_id, height, width, objects); an object
# is (name, pose, truncated, difficult, xmin, ymin, xmax, ymax), devkit style.
_IMAGES = {
    'train': (
        ('000012', 60, 80, (
            ('car', 'Rear', 0, 0, 10, 12, 50, 40),
            ('person', 'Left', 1, 0, 55, 5, 79, 58),
        )),
        # The whole image (every border), and a difficult object.
        ('000017', 72, 48, (
            ('horse', 'Frontal', 1, 0, 1, 1, 48, 72),
            ('person', 'Unspecified', 0, 1, 20, 10, 30, 40),
        )),
        # 1 pixel wide (xmin == xmax), 1 pixel tall, difficult and truncated.
        ('000023', 45, 90, (
            ('bottle', 'Unspecified', 0, 0, 40, 5, 40, 30),
            ('chair', 'Right', 0, 0, 3, 20, 25, 20),
            ('tvmonitor', 'Frontal', 1, 1, 60, 30, 90, 45),
        )),
        ('000026', 88, 66, ()),  # no objects at all
    ),
    'validation': (
        ('000005', 50, 70, (
            ('chair', 'Rear', 0, 0, 5, 20, 25, 49),
            ('chair', 'Unspecified', 0, 1, 30, 22, 41, 47),
            ('chair', 'Left', 1, 0, 50, 15, 70, 50),
            ('diningtable', 'Unspecified', 1, 1, 2, 30, 68, 50),
        )),
        # Left, right and bottom borders.
        ('000007', 64, 41, (
            ('car', 'Left', 1, 0, 1, 30, 41, 64),
        )),
        ('000009', 83, 57, (
            ('horse', 'Right', 0, 0, 5, 10, 50, 80),
            ('person', 'Right', 0, 0, 20, 3, 40, 50),
            ('person', 'Frontal', 0, 1, 45, 40, 52, 70),
        )),
        ('000016', 40, 75, (
            ('bicycle', 'Left', 0, 0, 12, 6, 66, 37),
        )),
    ),
    'test': (
        ('000001', 77, 52, (
            ('dog', 'Left', 1, 0, 1, 30, 30, 77),
            ('person', 'Left', 1, 0, 10, 1, 52, 60),
        )),
        ('000002', 46, 61, (
            ('train', 'Unspecified', 0, 0, 8, 9, 55, 40),
        )),
        ('000003', 59, 89, (
            ('sofa', 'Unspecified', 1, 1, 2, 20, 80, 59),
            ('chair', 'Frontal', 0, 0, 70, 10, 85, 40),
        )),
        # The whole image, 1 pixel wide, a difficult one.
        ('000004', 90, 43, (
            ('car', 'Unspecified', 1, 0, 1, 1, 43, 90),
            ('car', 'Rear', 0, 0, 21, 10, 21, 60),
            ('car', 'Frontal', 0, 1, 5, 50, 15, 57),
        )),
        ('000006', 62, 84, (
            ('pottedplant', 'Unspecified', 0, 0, 3, 5, 20, 40),
            ('diningtable', 'Unspecified', 1, 1, 10, 30, 84, 62),
            ('chair', 'Left', 0, 0, 60, 12, 75, 45),
        )),
    ),
}


def _jpeg(height: int, width: int, seed: int) -> bytes:
  """A colour gradient with a few rectangles, flat in every 8 x 8 block, as a
  4:4:4 JPEG of quality 95: blocks with no AC coefficients and no chroma
  subsampling decode to the same pixels under every libjpeg IDCT (TensorFlow's
  default INTEGER_FAST and PIL's INTEGER_ACCURATE alike), so a reader's pixels
  can be compared exactly with an independent decoding."""
  rng = np.random.default_rng(seed)
  y = np.linspace(0, 1, height)[:, None, None]
  x = np.linspace(0, 1, width)[None, :, None]
  a, b, c = rng.uniform(0, 255, (3, 1, 1, 3))
  pixels = a + (b - a) * y + (c - a) * x / 2
  for _ in range(4):
    y0, x0 = rng.integers(0, height - 8), rng.integers(0, width - 8)
    h, w = rng.integers(4, height // 2), rng.integers(4, width // 2)
    pixels[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
  bh, bw = -(-height // 8), -(-width // 8)
  padded = np.pad(pixels, ((0, 8 * bh - height), (0, 8 * bw - width), (0, 0)),
                  mode='edge')
  blocks = padded.reshape(bh, 8, bw, 8, 3).mean((1, 3))
  pixels = np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:height, :width]
  pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='JPEG', quality=_JPEG_QUALITY,
                               subsampling=0)
  return buffer.getvalue()


def _xml(image_id: str, height: int, width: int, objects) -> bytes:
  """An annotation file in the devkit's layout (tab-indented, as the real)."""
  lines = [
      '<annotation>',
      f'\t<folder>VOC{YEAR}</folder>',
      f'\t<filename>{image_id}.jpg</filename>',
      '\t<source>',
      '\t\t<database>The VOC2007 Database</database>',
      '\t\t<annotation>PASCAL VOC2007</annotation>',
      '\t\t<image>flickr</image>',
      '\t</source>',
      '\t<size>',
      f'\t\t<width>{width}</width>',
      f'\t\t<height>{height}</height>',
      '\t\t<depth>3</depth>',
      '\t</size>',
      '\t<segmented>0</segmented>',
  ]
  for name, pose, truncated, difficult, xmin, ymin, xmax, ymax in objects:
    lines += [
        '\t<object>',
        f'\t\t<name>{name}</name>',
        f'\t\t<pose>{pose}</pose>',
        f'\t\t<truncated>{truncated}</truncated>',
        f'\t\t<difficult>{difficult}</difficult>',
        '\t\t<bndbox>',
        f'\t\t\t<xmin>{xmin}</xmin>',
        f'\t\t\t<ymin>{ymin}</ymin>',
        f'\t\t\t<xmax>{xmax}</xmax>',
        f'\t\t\t<ymax>{ymax}</ymax>',
        '\t\t</bndbox>',
        '\t</object>',
    ]
  lines.append('</annotation>')
  return ('\n'.join(lines) + '\n').encode()


def _class_list(images) -> dict[str, bytes]:
  """The devkit's per-class lists: ' 1' the class is in the image, ' 0' only
  as difficult objects, '-1' absent."""
  lists = {}
  for name in CLASSES:
    lines = []
    for image_id, _, _, objects in images:
      flags = [difficult for n, _, _, difficult, *_ in objects if n == name]
      flag = -1 if not flags else (0 if all(flags) else 1)
      lines.append(f'{image_id} {flag:2d}\n')
    lists[name] = ''.join(lines).encode()
  return lists


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
  info = tarfile.TarInfo(name)
  info.mtime = _MTIME
  if data is None:
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)
  else:
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_archive(path: str, image_sets: dict[str, tuple],
                   jpegs: dict[str, bytes]) -> None:
  """One official-style archive: the images of `image_sets` ({list name:
  images}), their annotations, and the ImageSets/Main lists."""
  images = {image[0]: image for listed in image_sets.values()
            for image in listed}
  with tarfile.open(path, 'w') as tar:
    for folder in ('VOCdevkit', _ROOT, f'{_ROOT}/Annotations',
                   f'{_ROOT}/ImageSets', f'{_ROOT}/ImageSets/Main',
                   f'{_ROOT}/JPEGImages'):
      _add(tar, folder)
    for image_id in sorted(images):
      _, height, width, objects = images[image_id]
      _add(tar, f'{_ROOT}/Annotations/{image_id}.xml',
           _xml(image_id, height, width, objects))
    for list_name, listed in image_sets.items():
      ids = ''.join(f'{image[0]}\n' for image in listed)
      _add(tar, f'{_ROOT}/ImageSets/Main/{list_name}.txt', ids.encode())
      for name, content in _class_list(listed).items():
        _add(tar, f'{_ROOT}/ImageSets/Main/{name}_{list_name}.txt', content)
    for image_id in sorted(images):
      _add(tar, f'{_ROOT}/JPEGImages/{image_id}.jpg', jpegs[image_id])


def write_voc_archives(manual_dir: str) -> dict[str, list[dict]]:
  """Writes VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar into
  `manual_dir` (created if needed); byte-identical on every call.

  Returns, per TFDS split ('train', 'validation', 'test'), the images in
  ImageSets order: {'image_id', 'file_name', 'height', 'width', 'jpeg' (the
  file's bytes), 'pixels' (uint8 (H, W, 3) RGB, decoded by PIL: what any
  libjpeg decoder gives for these files), 'objects': [{'name', 'pose' (as in
  the XML), 'truncated', 'difficult' (bools), 'xmin', 'ymin', 'xmax', 'ymax'
  (the XML's 1-based inclusive ints)}]}, objects in XML order.
  """
  os.makedirs(manual_dir, exist_ok=True)
  jpegs, expected = {}, {}
  for split in SPLITS:
    expected[split] = []
    for image_id, height, width, objects in _IMAGES[split]:
      jpegs[image_id] = _jpeg(height, width, seed=int(image_id))
      expected[split].append({
          'image_id': image_id,
          'file_name': f'{image_id}.jpg',
          'height': height,
          'width': width,
          'jpeg': jpegs[image_id],
          'pixels': np.asarray(Image.open(io.BytesIO(jpegs[image_id]))),
          'objects': [
              {'name': name, 'pose': pose, 'truncated': bool(truncated),
               'difficult': bool(difficult), 'xmin': xmin, 'ymin': ymin,
               'xmax': xmax, 'ymax': ymax}
              for name, pose, truncated, difficult, xmin, ymin, xmax, ymax
              in objects],
      })
  train, val = _IMAGES['train'], _IMAGES['validation']
  trainval = tuple(sorted(train + val))
  _write_archive(os.path.join(manual_dir, TRAINVAL_ARCHIVE),
                 {'train': train, 'val': val, 'trainval': trainval}, jpegs)
  _write_archive(os.path.join(manual_dir, TEST_ARCHIVE),
                 {'test': _IMAGES['test']}, jpegs)
  return expected


class NetworkAttempted(RuntimeError):
  """A connection or DNS look-up during a preparation that must be offline.

  Not an OSError, so that code which treats OSError as "offline, carry on"
  does not swallow it.
  """


@contextlib.contextmanager
def no_network() -> Iterator[list[str]]:
  """Within: every socket connection and DNS look-up of Python code raises
  `NetworkAttempted` at once and is recorded in the yielded list (a caller
  that catches exceptions broadly still leaves its trace there)."""
  attempts = []
  targets = ((socket.socket, 'connect'), (socket.socket, 'connect_ex'),
             (socket, 'getaddrinfo'), (socket, 'gethostbyname'))
  absent = object()
  originals = [vars(owner).get(name, absent) for owner, name in targets]

  def refuse(what, is_method):
    def refused(*args, **kwargs):
      attempt = f'{what}{args[1:] if is_method else args}{kwargs or ""}'
      attempts.append(attempt)
      raise NetworkAttempted(f'network access attempted offline: {attempt}')
    return refused

  for owner, name in targets:
    is_method = owner is socket.socket
    what = f'socket.{name}' if is_method else name
    setattr(owner, name, refuse(what, is_method))
  try:
    yield attempts
  finally:
    for (owner, name), original in zip(targets, originals):
      if original is absent:  # inherited (socket.socket from _socket.socket)
        delattr(owner, name)
      else:
        setattr(owner, name, original)


def _sha256(path: str) -> tuple[int, str]:
  digest, size = hashlib.sha256(), 0
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
      size += len(block)
  return size, digest.hexdigest()


@contextlib.contextmanager
def fake_archive_checksums(manual_dir: str, builder: str = 'voc',
                           names: tuple[str, ...] = (TRAINVAL_ARCHIVE,
                                                     TEST_ARCHIVE)
                           ) -> Iterator[None]:
  """Within: TFDS's `builder` class (the Voc builder by default) expects the
  archives `names` now in `manual_dir` (their size and sha256) at the URLs
  registered for the official files; every other registered entry is kept.
  Restored on exit."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder_cls = tfds.builder_cls(builder)
  registered = builder_cls.url_infos
  missing = set(names) - {info.filename for info in registered.values()}
  if missing:
    raise AssertionError(f'TFDS no longer registers {sorted(missing)} for '
                         f'{builder}')
  fake = dict(registered)
  for url, info in registered.items():
    if info.filename in names:
      size, checksum = _sha256(os.path.join(manual_dir, info.filename))
      fake[url] = tfds.download.checksums.UrlInfo(
          size=size, checksum=checksum, filename=info.filename)
  sentinel = object()
  own = builder_cls.__dict__.get('url_infos', sentinel)
  builder_cls.url_infos = fake
  try:
    yield
  finally:
    if own is sentinel:
      del builder_cls.url_infos
    else:
      builder_cls.url_infos = own


def prepare_voc2007(data_dir: str, manual_dir: str):
  """Prepares TFDS voc/2007 in `data_dir` from the archives in `manual_dir`
  (`write_voc_archives`) with the genuine builder, offline, through the
  project's `prepare_voc.prepare`; returns the prepared builder. Reuses an already prepared `data_dir`."""
  from sppnet_jax.detection.data import prepare_voc  # pylint: disable=g-import-not-at-top
  with no_network() as attempts, fake_archive_checksums(manual_dir):
    builder = prepare_voc.prepare(f'voc/{YEAR}', data_dir, manual_dir)
  if attempts:
    raise NetworkAttempted(f'network access attempted offline: {attempts}')
  return builder
