"""Detection data: images with their ground-truth boxes, read per process.

Three sources give the same examples (`DetectionExample`) through one reading
path (`decoded_examples`: `core.data`'s per-process shards, decoding and
corrupt-image accounting):

* `TfdsVocSource`: TFDS `voc/2007` (or `voc/2012`), prepared with the genuine
  builder. Splits 'train', 'validation', 'test'; the paper trains on trainval =
  'train+validation'. Offline preparation from the two archives:
  `python -m sppnet_jax.detection.data.prepare_voc` (`prepare_voc.py`).
* `CocoFolderSource`: a COCO-format folder, the interchange format of users'
  own data: `root/<split>/annotations.json` with the images at their
  `file_name` relative to `root/<split>/`.
* The embedded detection set (`embedded.py`), generated as such a COCO
  folder and read by `CocoFolderSource`.

Boxes are the library's convention (`detection/boxes.py`: float (y0, x0, y1, x1),
continuous pixels), converted where each source reads its annotations:

* TFDS VOC stores [ymin/H, xmin/W, ymax/H, xmax/W] of the XML's 1-based
  inclusive integers in float32; `round(v * size)` gives the XML integers back
  exactly, then y0 = ymin - 1, y1 = ymax (`boxes.from_voc`).
* COCO [x, y, width, height]: y0 = y, y1 = y + height (`boxes.from_coco`).

Labels are contiguous, 0..K-1, in the order of `class_names`: TFDS's label
names; for COCO the categories sorted by id (ids need not be contiguous; the
names are kept). An object is difficult when VOC says so; in COCO files when
`iscrowd` is 1 or a (VOC-style, non-standard) `difficult` field is 1: both are
regions the evaluation ignores.

Bad annotations:
* a box partly outside its image is clipped to the image; a box with no area
  left (zero-area, reversed or wholly outside) is dropped, logged and counted in
  `stats['dropped_boxes']`;
* an image with no objects is an example with no boxes (all its proposals are
  background);
* an unknown category or image id in a COCO file, a missing or unreadable
  annotations file, categories that differ between splits: a one-line
  `DataError`;
* an unreadable image is skipped, logged and counted (`corrupt.py`), never a
  crash.

Shards: process p of P reads an even, contiguous part of the split, in a fixed
order (TFDS's record order; COCO: ascending image id), so the parts are disjoint
and their union is the split.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from sppnet_jax.core.data import corrupt
from sppnet_jax.core.data import image_ops
from sppnet_jax.core.data import sources
from sppnet_jax.core.data.options import AUTOTUNE, no_autograph
from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.config import splits_of
from sppnet_jax.errors import DataError

ANNOTATIONS_FILE = 'annotations.json'
VOC_PREPARE_HINT = (
    'put VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar in '
    '{manual_dir} and run: python -m sppnet_jax.detection.data.prepare_voc '
    '--data_dir={data_dir} --manual_dir={manual_dir} (or point '
    '--config.data_dir at a prepared TFDS folder).')


@dataclasses.dataclass(frozen=True)
class DetectionExample:
  """One image and its objects (G of them), boxes in the library convention."""
  image_id: str
  image: np.ndarray  # uint8 (H, W, 3) RGB
  boxes: np.ndarray  # float32 (G, 4) (y0, x0, y1, x1), inside the image
  labels: np.ndarray  # int32 (G,)
  difficult: np.ndarray  # bool (G,)


# -----------------------------------------------------------------------------
# TFDS VOC.
# -----------------------------------------------------------------------------


class TfdsVocSource:
  """A prepared TFDS VOC data set ('voc/2007'), images read as encoded bytes."""
  is_path = False

  def __init__(self, name: str = 'voc/2007', *, data_dir: str = '',
               manual_dir: str = ''):
    self.name = name
    self.builder = sources.tfds_builder(name, data_dir, manual_dir,
                                        prepare_hint=VOC_PREPARE_HINT)
    self.class_names = tuple(
        self.builder.info.features['objects']['label'].names)

  def num_examples(self, split: str) -> int:
    return sources.tfds_num_examples(self.builder, split)

  def records(self, split: str, *, process_index: int, process_count: int):
    """This process's part of `split`, then a sentinel: {'pos', 'data'
    (encoded image), 'file_name', 'bbox' (normalised), 'label', 'difficult'}."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    sub, _ = sources.tfds_shard(self.builder, split, process_index,
                                process_count)
    ds = self.builder.as_dataset(
        split=sub, shuffle_files=False,
        decoders={'image': tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(skip_prefetch=True, try_autocache=False))
    ds = ds.map(no_autograph(lambda e: {
        'data': e['image'],
        'file_name': e['image/filename'],
        'bbox': e['objects']['bbox'],
        'label': tf.cast(e['objects']['label'], tf.int32),
        'difficult': e['objects']['is_difficult']}))
    return (sources.with_sentinel(ds),
            lambda pos: f'{self.name} {sub} example #{pos}')

  def annotations(self, split: str, element, height: int, width: int):
    """(image id, boxes, labels, difficult) of a decoded record."""
    del split  # the record holds its annotations
    image_id = os.path.splitext(element['file_name'].decode())[0]
    normalised = np.asarray(element['bbox'], np.float64).reshape(-1, 4)
    ymin, xmin, ymax, xmax = np.round(
        normalised * [height, width, height, width]).T
    voc = np.stack([xmin, ymin, xmax, ymax], -1)
    return (image_id, box_lib.from_voc(voc), element['label'],
            element['difficult'])


# -----------------------------------------------------------------------------
# COCO-format folders.
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CocoSplit:
  """A COCO json's images (by ascending id) and their objects."""
  directory: str
  category_ids: tuple[int, ...]  # sorted; label = index
  category_names: tuple[str, ...]
  image_ids: tuple[int, ...]
  file_names: tuple[str, ...]
  boxes: tuple[np.ndarray, ...]  # per image, (G, 4) library convention
  labels: tuple[np.ndarray, ...]
  difficult: tuple[np.ndarray, ...]


def _load_json(path: str):
  if not os.path.isfile(path):
    raise DataError(
        f'No {ANNOTATIONS_FILE} in {os.path.dirname(path)}: a COCO-format '
        f'split folder holds {ANNOTATIONS_FILE} and the images at its '
        'file_name paths; point --config.data_dir at the folder of the splits.')
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DataError(f'Cannot read {path} ({e}): it must be a COCO-format '
                    'json file.') from None
  for key in ('images', 'annotations', 'categories'):
    if not isinstance(data.get(key), list):
      raise DataError(f'{path} has no {key!r} list: it must be a COCO-format '
                      'json file (images, annotations, categories).')
  return data


def read_coco_split(directory: str) -> CocoSplit:
  """Reads `directory/annotations.json`; one-line DataErrors for bad files."""
  path = os.path.join(directory, ANNOTATIONS_FILE)
  data = _load_json(path)
  try:
    categories = sorted((int(c['id']), str(c['name']))
                        for c in data['categories'])
    images = sorted((int(im['id']), str(im['file_name']))
                    for im in data['images'])
  except (KeyError, TypeError, ValueError) as e:
    raise DataError(f'{path}: a category or image lacks its id/name/file_name '
                    f'({e!r}); fix the file.') from None
  label_of = {cid: label for label, (cid, _) in enumerate(categories)}
  if len(label_of) != len(categories):
    raise DataError(f'{path}: category ids repeat; give each category its own '
                    'id.')
  index_of = {iid: i for i, (iid, _) in enumerate(images)}
  if len(index_of) != len(images):
    raise DataError(f'{path}: image ids repeat; give each image its own id.')
  objects = [[] for _ in images]
  for a in data['annotations']:
    try:
      image, category = int(a['image_id']), int(a['category_id'])
      bbox = [float(v) for v in a['bbox']]
      hard = bool(a.get('iscrowd', 0)) or bool(a.get('difficult', 0))
    except (KeyError, TypeError, ValueError) as e:
      raise DataError(f'{path}: annotation {a.get("id")!r} lacks a valid '
                      f'image_id/category_id/bbox ({e!r}); fix the file.') from None
    if category not in label_of:
      raise DataError(
          f'{path}: annotation {a.get("id")!r} has category_id {category}, '
          'which is not in its categories; add the category or drop the '
          'annotation.')
    if image not in index_of:
      raise DataError(f'{path}: annotation {a.get("id")!r} refers to image_id '
                      f'{image}, which is not in its images; fix the file.')
    if len(bbox) != 4 or not np.all(np.isfinite(bbox)):
      raise DataError(f'{path}: annotation {a.get("id")!r} has bbox {bbox}; a '
                      'COCO bbox is 4 finite numbers [x, y, width, height].')
    objects[index_of[image]].append((bbox, label_of[category], hard))

  def column(rows, k, dtype, shape):
    return np.asarray([r[k] for r in rows], dtype).reshape(shape)

  return CocoSplit(
      directory=directory,
      category_ids=tuple(c for c, _ in categories),
      category_names=tuple(n for _, n in categories),
      image_ids=tuple(i for i, _ in images),
      file_names=tuple(f for _, f in images),
      boxes=tuple(box_lib.from_coco(column(rows, 0, np.float32, (-1, 4)))
                  for rows in objects),
      labels=tuple(column(rows, 1, np.int32, (-1,)) for rows in objects),
      difficult=tuple(column(rows, 2, bool, (-1,)) for rows in objects))


class CocoFolderSource:
  """`root/<split>/annotations.json` + images; splits read on first use."""
  is_path = True

  def __init__(self, root: str, splits: Sequence[str]):
    self.root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(self.root):
      raise DataError(
          f'Data directory {self.root} does not exist: point --config.data_dir '
          f'at a folder holding <split>/{ANNOTATIONS_FILE} and the images (or '
          'use --config.dataset=embedded).')
    self._splits = {name: read_coco_split(os.path.join(self.root, name))
                    for name in splits}
    first, *others = self._splits.values()
    for split in others:
      if (split.category_ids, split.category_names) != (
          first.category_ids, first.category_names):
        raise DataError(
            f'{split.directory} and {first.directory} list different '
            'categories; every split needs the same categories and ids.')
    self.class_names = first.category_names
    self.category_ids = first.category_ids

  def split(self, name: str) -> CocoSplit:
    if name not in self._splits:
      raise DataError(f'Split {name!r} was not opened ({", ".join(self._splits)}'
                      ' were): set --config.train_split / --config.eval_split.')
    return self._splits[name]

  def num_examples(self, split: str) -> int:
    return len(self.split(split).image_ids)

  def records(self, split: str, *, process_index: int, process_count: int):
    """This process's part of `split`, then a sentinel: {'pos', 'data' (file
    path), 'index' (position in the split)}."""
    s = self.split(split)
    lo, hi = sources.even_slice(len(s.image_ids), process_index, process_count)
    paths = [os.path.join(s.directory, f) for f in s.file_names[lo:hi]]
    ds = tf.data.Dataset.from_tensor_slices({
        'data': tf.constant(paths, tf.string, shape=[hi - lo]),
        'index': tf.range(lo, hi, dtype=tf.int64)})

    def describe(pos):
      return paths[pos] if 0 <= pos < len(paths) else f'position {pos}'

    return sources.with_sentinel(ds), describe

  def annotations(self, split: str, element, height: int, width: int):
    """(image id, boxes, labels, difficult) of a decoded record."""
    del height, width  # COCO boxes are in pixels already
    s, i = self.split(split), int(element['index'])
    return str(s.image_ids[i]), s.boxes[i], s.labels[i], s.difficult[i]


# -----------------------------------------------------------------------------
# Reading.
# -----------------------------------------------------------------------------


def clean_boxes(boxes, labels, difficult, height: int, width: int):
  """Clips boxes to the image and drops those with no area left; returns
  (boxes, labels, difficult, number dropped)."""
  clipped = box_lib.clip_to_image(np.asarray(boxes, np.float32).reshape(-1, 4),
                                  height, width)
  keep = box_lib.areas(clipped) > 0
  return (clipped[keep], np.asarray(labels, np.int32).reshape(-1)[keep],
          np.asarray(difficult, bool).reshape(-1)[keep],
          int(np.sum(~keep)))


def decoded_examples(source, split: str, *, process_index: int = 0,
                     process_count: int = 1,
                     stats: collections.Counter | None = None
                     ) -> Iterator[DetectionExample]:
  """This process's examples of `split`, in the shard's order.

  Unreadable images are skipped and counted under the kind `split` (see
  `corrupt.num_skipped_images`); `stats`, if given, counts 'images' and
  'dropped_boxes'.
  """
  sources.check_process(process_index, process_count)
  ds, describe = source.records(split, process_index=process_index,
                                process_count=process_count)
  is_path = source.is_path

  def decode(e):
    image = tf.cond(e['sentinel'], lambda: tf.zeros([0, 0, 3], tf.uint8),
                    lambda: image_ops.decode_record(e['data'], is_path))
    return {**{k: v for k, v in e.items() if k != 'data'}, 'image': image}

  # Batches of one image (`unbatch` of these variable-shape batches crashes
  # TF 2.21); the sentinel's batch is empty.
  ds = corrupt.decoded_batches(ds, decode, 1, kind=split, start=0,
                               describe=describe, fill_gaps=False)
  stats = collections.Counter() if stats is None else stats
  for batch in ds.prefetch(AUTOTUNE).as_numpy_iterator():
    if not len(batch['image']):
      continue
    e = {k: v[0] for k, v in batch.items()}
    height, width = e['image'].shape[:2]
    image_id, raw, labels, difficult = source.annotations(split, e, height,
                                                            width)
    kept, labels, difficult, dropped = clean_boxes(raw, labels, difficult,
                                                   height, width)
    if dropped:
      logging.warning('Dropped %d box(es) with no area inside image %s '
                      '(%dx%d).', dropped, image_id, width, height)
    stats['images'] += 1
    stats['dropped_boxes'] += dropped
    yield DetectionExample(image_id=image_id, image=e['image'], boxes=kept,
                           labels=labels, difficult=difficult)


# -----------------------------------------------------------------------------
# From the config.
# -----------------------------------------------------------------------------


def _embedded_root(config) -> str:
  from sppnet_jax.detection.data import embedded  # pylint: disable=g-import-not-at-top
  return config.data_dir or embedded.default_root()


def prepare_data(config) -> None:
  """Makes the embedded detection set if the config asks for it and it is not
  there yet: the one step that writes data, called before `open_source`."""
  if config.dataset == 'embedded':
    from sppnet_jax.detection.data import embedded  # pylint: disable=g-import-not-at-top
    embedded.ensure_embedded_detection_dataset(_embedded_root(config))


def open_source(config):
  """The configured source with its train and eval splits; writes nothing."""
  splits = splits_of(config)
  if config.dataset == 'embedded':
    from sppnet_jax.detection.data import embedded  # pylint: disable=g-import-not-at-top
    root = _embedded_root(config)
    if not embedded.is_complete(root):
      raise DataError(f'the embedded detection set is not at {root}: '
                      '--mode=proposals or training makes it, or point '
                      '--config.data_dir at a copy.')
    return CocoFolderSource(root, splits)
  if config.dataset == 'coco_folder':
    return CocoFolderSource(config.data_dir, splits)
  return TfdsVocSource(config.dataset, data_dir=config.data_dir,
                       manual_dir=config.manual_dir)
