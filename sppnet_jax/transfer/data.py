"""The labelled images a transfer run reads, as `features.LabelledImage`s.

* Multi-label sets (`multilabel_split`), through the detection data readers
  (`detection.data.sources`: the same decoding, the same corrupt-image
  accounting): the embedded detection set (COCO folder) and TFDS `voc/2007`
  (prepared offline by `python -m sppnet_jax.detection.data.prepare_voc`).
  An image's label is its (K,) VOC classification ground truth
  (`voc_ap.image_labels`: 1 where it has a non-difficult object of the
  class, 0 where only difficult ones, -1 where none). Unreadable images are
  skipped by the reader and counted as the split's size minus the images read.
* Multi-class image folders (`folder_images`): data_dir/<class>/<image>, the
  classes sorted by name (label = index), every image in name order;
  unreadable files are given as None (skipped and counted by the feature
  extraction). Random splits are drawn afterwards (`splits.class_split`).
* TFDS `caltech101` (`tfds_class_images`), prepared offline by the genuine
  builder (`prepare_caltech.py`): its 'train' and 'test' splits read as one
  set (TFDS's own split is one fixed draw, not the paper's protocol), the
  labels TFDS's class names; an image TF cannot decode is given as None.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

from sppnet_jax.transfer.features import LabelledImage
from sppnet_jax.transfer.voc_ap import image_labels
from sppnet_jax.core.data import image_files, image_ops, sources
from sppnet_jax.errors import DataError


@dataclasses.dataclass
class Split:
  """A split to extract: its images (read lazily), its size, class names."""
  name: str
  images: Iterator[LabelledImage]
  total: int
  class_names: tuple[str, ...]


def detection_source(config, splits=None):
  """The multi-label set's detection reader (its boxes and classes) over
  `splits` (default: the recipe's train and test splits)."""
  from sppnet_jax.detection.data import embedded, sources as det_sources  # pylint: disable=g-import-not-at-top
  splits = list(splits or (config.train_split, config.test_split))
  if config.dataset == 'embedded':
    root = config.data_dir or embedded.default_root()
    embedded.ensure_embedded_detection_dataset(root)
    return det_sources.CocoFolderSource(root, splits)
  return det_sources.TfdsVocSource(config.dataset, data_dir=config.data_dir,
                                   manual_dir=config.manual_dir)


def multilabel_splits(config) -> tuple[Split, Split]:
  """(train, test) of a multi-label set (module docstring)."""
  from sppnet_jax.detection.data import sources as det_sources  # pylint: disable=g-import-not-at-top
  source = detection_source(config)
  names = tuple(source.class_names)

  def read(split):
    for example in det_sources.decoded_examples(source, split):
      yield LabelledImage(example.image_id, example.image, image_labels(
          example.labels, example.difficult, len(names)))

  return tuple(Split(split, read(split), source.num_examples(split), names)
               for split in (config.train_split, config.test_split))


def folder_images(root: str) -> Split:
  """Every image of root/<class>/ (module docstring)."""
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    raise DataError(f'{root} does not exist: point --config.data_dir at a '
                    'folder holding one sub-folder of images per class.')
  names = sources.list_classes(root)
  listed = sources.list_folder(root, names)
  paths = [os.path.join(root, p.decode()) for p in listed.rel_paths]

  def read():
    for path, label in zip(paths, listed.labels):
      image, _ = image_files.read_image(path)
      yield LabelledImage(os.path.relpath(path, root), image, int(label))

  return Split('all', read(), len(paths), names)


def tfds_class_images(name: str, data_dir: str, manual_dir: str) -> Split:
  """Every image of a prepared TFDS multi-class set's train and test splits
  (module docstring)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from sppnet_jax.transfer import prepare_caltech  # pylint: disable=g-import-not-at-top
  builder = sources.tfds_builder(name, data_dir, manual_dir,
                                 prepare_hint=prepare_caltech.PREPARE_HINT)
  split = '+'.join(builder.info.splits.keys())
  names = tuple(builder.info.features['label'].names)

  def read():
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={'image': tfds.decode.SkipDecoding()})
    for e in ds.as_numpy_iterator():
      try:
        image = image_ops.decode_full(e['image']).numpy()
      except (tf.errors.OpError, ValueError):
        image = None
      key = e['image/file_name'].decode()
      yield LabelledImage(f'{names[e["label"]]}/{key}', image, int(e['label']))

  return Split('all', read(), sources.tfds_num_examples(builder, split),
               names)
