"""Labelled image sources, read per process: image folders and TFDS data sets.

A source is opened once per run (listing a folder of ImageNet takes seconds; a
TFDS builder reads its metadata) and holds what it found, so that nothing here
is cached at module level. Both kinds give the same records, ready for
`corrupt.decoded_batches`: {'pos': int64 position, 'data': a file path
(`is_path`) or the encoded image bytes, 'label': int32}.

Determinism. All randomness is stateless: a training epoch's record order is a
shuffle seeded by (seed, epoch, process). Image folders are shuffled exactly (a
full permutation of the file list); TFDS records are shuffled by file and then
in a `shuffle_buffer_size` buffer of encoded images (deterministic when the
pipeline's `deterministic` option is on).

Multiple processes. Process p of P reads a disjoint part of each split; the
parts' union is the whole split.
* image folders, train: the epoch's shuffled file list (the same on every
  process) cut into P even, contiguous parts, so shards change every epoch;
* image folders, eval: the sorted file list cut into P even, contiguous parts;
* TFDS: absolute-index slices `split[lo:hi]` of an even split (as
  `tfds.even_splits` does).
A training shard is repeated (reshuffled) as often as needed to reach the
positions asked for, so that every process can yield the same number of batches.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from sppnet_jax.core.data.image_files import IMAGE_EXTENSIONS
from sppnet_jax.core.data.options import no_autograph
from sppnet_jax.errors import DataError

# Keys of the images and labels in TFDS image-classification builders.
TFDS_IMAGE_KEY = 'image'
TFDS_LABEL_KEY = 'label'


def even_slice(n: int, index: int, count: int) -> tuple[int, int]:
  """[lo, hi) of part `index` of `count` near-equal contiguous parts of n."""
  return index * n // count, (index + 1) * n // count


def check_process(process_index: int, process_count: int) -> None:
  if not 0 <= process_index < process_count:
    raise ValueError(f'Bad process_index {process_index} for process_count '
                     f'{process_count}.')


def stateless_key(seed: int, epoch: int, process_index: int) -> np.ndarray:
  """A [2] int64 stateless key for (seed, epoch, process)."""
  state = np.random.SeedSequence(
      [int(seed) & 0xFFFFFFFF, int(epoch), int(process_index), 0x5199]
  ).generate_state(2, np.uint32)
  return state.astype(np.int64)


def with_sentinel(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Appends one sentinel record (zeros of every field, empty where a dimension
  is unknown) and numbers the records: the sentinel lets the corrupt-image
  accounting see a gap at the end."""
  sentinel = tf.data.Dataset.from_tensors(tf.nest.map_structure(
      lambda spec: tf.zeros([d if d is not None else 0 for d in spec.shape],
                            spec.dtype), ds.element_spec))
  ds = ds.map(no_autograph(lambda e: {**e, 'sentinel': tf.constant(False)}))
  ds = ds.concatenate(
      sentinel.map(no_autograph(lambda e: {**e, 'sentinel': tf.constant(True)})))
  return ds.enumerate().map(no_autograph(lambda pos, e: {'pos': pos, **e}))


# -----------------------------------------------------------------------------
# Image folders.
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FolderSplit:
  directory: str  # e.g. root/train
  class_names: tuple[str, ...]
  rel_paths: np.ndarray  # bytes, '<class>/<file>', sorted
  labels: np.ndarray  # int32


def _split_dir(root, preferred, fallback, what):
  for name in (preferred, fallback):
    if name and os.path.isdir(os.path.join(root, name)):
      return os.path.join(root, name)
  if not os.path.isdir(root):
    raise DataError(
        f'Data directory {root} does not exist: point --config.data_dir at a '
        'folder holding train/<class>/* and val/<class>/* images (or use '
        '--config.dataset=embedded).')
  names = ' or '.join(repr(n) for n in dict.fromkeys((preferred, fallback)))
  raise DataError(
      f'No {what} folder ({names}) in {root}: it needs train/<class>/* and '
      'val/<class>/* images; point --config.data_dir at such a folder.')


def list_classes(train_dir: str) -> tuple[str, ...]:
  """The class folders of a training split, sorted (class id = index)."""
  names = sorted(entry.name for entry in os.scandir(train_dir)
                 if entry.is_dir() and not entry.name.startswith('.'))
  if not names:
    raise DataError(
        f'{train_dir} has no class sub-folders: put the images in '
        f'{train_dir}/<class>/*.')
  return tuple(names)


def list_folder(directory: str, class_names: tuple[str, ...]) -> FolderSplit:
  """Every image file of `directory/<class>/`, sorted, with its class id."""
  class_ids = {name: i for i, name in enumerate(class_names)}
  paths, labels = [], []
  for entry in sorted(os.scandir(directory), key=lambda e: e.name):
    if not entry.is_dir() or entry.name.startswith('.'):
      continue
    if entry.name not in class_ids:
      raise DataError(
          f'Class folder {entry.path} has no counterpart in the training '
          'folder; every evaluation class must also be a training class.')
    files = sorted(
        f.name for f in os.scandir(entry.path)
        if f.is_file() and not f.name.startswith('.')
        and f.name.lower().endswith(IMAGE_EXTENSIONS))
    paths.extend(f'{entry.name}/{f}' for f in files)
    labels.extend([class_ids[entry.name]] * len(files))
  if not paths:
    raise DataError(
        f'No images ({", ".join(IMAGE_EXTENSIONS)}) under {directory}/<class>/: '
        'point --config.data_dir at a folder with train/<class>/* and '
        'val/<class>/* images.')
  logging.info('Found %d images of %d classes in %s.', len(paths),
               len(set(labels)), directory)
  return FolderSplit(directory=directory, class_names=class_names,
                     rel_paths=np.array([p.encode() for p in paths]),
                     labels=np.array(labels, np.int32))


def folder_train_order(n, *, seed, epoch, process_index, process_count,
                       length) -> np.ndarray:
  """Indices of the files this process reads in the epoch, `length` of them.

  The epoch's permutation of all n files (the same on every process) is cut
  into even parts, one per process; the part is followed by fresh permutations
  of itself as often as needed to reach `length`.
  """
  perm = np.random.default_rng(
      [int(seed) & 0xFFFFFFFF, int(epoch), 0x5199]).permutation(n)
  lo, hi = even_slice(n, process_index, process_count)
  shard = perm[lo:hi]
  if not len(shard):
    raise DataError(f'Process {process_index} of {process_count} gets no '
                    f'training images: the split has only {n}.')
  parts, have, repeat = [shard], len(shard), 1
  while have < length:
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch),
                                 int(process_index), repeat, 0x5199])
    parts.append(rng.permutation(shard))
    have += len(shard)
    repeat += 1
  return np.concatenate(parts)[:length]


def _folder_records(split: FolderSplit, order: np.ndarray, start: int,
                    sentinel: bool = False):
  """Records {'pos', 'data' (file path), 'label'} from position `start`."""
  order = np.asarray(order, np.int64)
  positions = np.arange(len(order), dtype=np.int64)
  prefix = split.directory.rstrip('/') + '/'
  elements = {
      'pos': positions[start:],
      'data': np.char.add(prefix.encode(), split.rel_paths[order[start:]]),
      'label': split.labels[order[start:]],
  }
  if sentinel:
    elements = {
        'pos': np.append(elements['pos'], len(order)),
        'data': np.append(elements['data'], b''),
        'label': np.append(elements['label'], 0).astype(np.int32),
        'sentinel': np.append(np.zeros(len(order) - start, bool), True),
    }
  ds = tf.data.Dataset.from_tensor_slices(elements)

  def describe(pos):
    if 0 <= pos < len(order):
      return os.path.join(split.directory,
                          split.rel_paths[order[pos]].decode())
    return f'position {pos}'

  return ds, describe


class ImageFolderSource:
  """`root/<train_split>/<class>/*` and `root/<eval_split>/<class>/*` (falling
  back to 'train' and 'val'); class ids are the sorted training folder names."""
  is_path = True

  def __init__(self, root: str, train_split: str = 'train',
               eval_split: str = 'val'):
    self.root = os.path.abspath(os.path.expanduser(root))
    train_dir = _split_dir(self.root, train_split, 'train', 'training')
    self.class_names = list_classes(train_dir)
    self.train = list_folder(train_dir, self.class_names)
    eval_dir = _split_dir(self.root, eval_split, 'val', 'evaluation')
    self.eval = list_folder(eval_dir, self.class_names)

  @property
  def num_train_examples(self) -> int:
    return len(self.train.labels)

  @property
  def num_eval_examples(self) -> int:
    return len(self.eval.labels)

  def train_records(self, *, seed, epoch, process_index, process_count, start,
                    end):
    """Positions start..end-1 of this process's records for the epoch."""
    order = folder_train_order(
        len(self.train.labels), seed=seed, epoch=epoch,
        process_index=process_index, process_count=process_count, length=end)
    return _folder_records(self.train, order, start)

  def eval_records(self, *, process_index, process_count):
    """This process's part of the eval split, then a sentinel."""
    lo, hi = even_slice(len(self.eval.labels), process_index, process_count)
    return _folder_records(self.eval, np.arange(lo, hi), 0, sentinel=True)


# -----------------------------------------------------------------------------
# TFDS.
# -----------------------------------------------------------------------------


def _tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def _prepare_hint(name, data_dir, manual_dir) -> str:
  if name.split(':')[0].split('/')[0] == 'imagenet2012':
    return (f'put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in '
            f'{manual_dir} and run: tfds build imagenet2012 '
            f'--data_dir={data_dir} --manual_dir={manual_dir} (or point '
            '--config.data_dir at a prepared TFDS folder).')
  return (f'run: tfds build {name} --data_dir={data_dir} (on a machine that '
          'may download it), or point --config.data_dir at a prepared TFDS '
          'folder.')


def tfds_builder(name: str, data_dir: str = '', manual_dir: str = '',
                 prepare_hint: str = ''):
  """The prepared builder of a TFDS data set, or a one-line DataError that says
  how to prepare it (`prepare_hint`, formatted with data_dir and manual_dir,
  for data sets built from archives the user has). Never downloads or prepares
  anything."""
  tfds = _tfds()
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f'Unknown data set {name!r}: use --config.dataset=embedded, '
        'imagefolder, or a TFDS name such as imagenet2012.') from None
  except ImportError as e:
    raise DataError(
        f'TFDS builder {name!r} needs a missing package ({e}): pip install '
        '-r requirements.txt.') from None
  if not builder.is_prepared():
    actual_dir = data_dir or os.environ.get('TFDS_DATA_DIR') or (
        '~/tensorflow_datasets')
    manual = manual_dir or os.path.join(actual_dir, 'downloads', 'manual')
    hint = (prepare_hint.format(data_dir=actual_dir, manual_dir=manual)
            if prepare_hint else _prepare_hint(name, actual_dir, manual))
    raise DataError(
        f'TFDS data set {name!r} is not prepared in {actual_dir}: ' + hint)
  return builder


def tfds_num_examples(builder, split: str) -> int:
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError) as e:
    raise DataError(
        f'TFDS data set {builder.name!r} has no split {split!r} '
        f'({", ".join(builder.info.splits.keys())} exist): set '
        '--config.train_split / --config.eval_split.') from e


def tfds_shard(builder, split: str, process_index: int, process_count: int):
  """(sub-split, number of examples) of process `process_index`: an even,
  contiguous part of `split` (which may be 'a+b' or a slice)."""
  n = tfds_num_examples(builder, split)
  lo, hi = even_slice(n, process_index, process_count)
  if '[' in split or '+' in split:
    sub = _tfds().even_splits(split, n=process_count)[process_index]
    return sub, hi - lo
  return f'{split}[{lo}:{hi}]', hi - lo


class TfdsSource:
  """A prepared TFDS image-classification data set ('image', 'label'), read as
  encoded bytes (the project decodes them itself)."""
  is_path = False

  def __init__(self, name: str, *, data_dir: str = '', manual_dir: str = '',
               train_split: str = 'train', eval_split: str = 'validation',
               shuffle_buffer_size: int = 16_384):
    self.name = name
    self.builder = tfds_builder(name, data_dir, manual_dir)
    self.train_split, self.eval_split = train_split, eval_split
    self.shuffle_buffer_size = shuffle_buffer_size
    label = self.builder.info.features[TFDS_LABEL_KEY]
    self.class_names = tuple(label.names)
    self.num_train_examples = tfds_num_examples(self.builder, train_split)
    self.num_eval_examples = tfds_num_examples(self.builder, eval_split)

  def _shard(self, split: str, process_index: int, process_count: int):
    return tfds_shard(self.builder, split, process_index, process_count)

  def _records(self, split, *, shuffle_seed: int | None):
    tfds = _tfds()
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, skip_prefetch=True,
                                  try_autocache=False)
    ds = self.builder.as_dataset(
        split=split, shuffle_files=shuffle_seed is not None,
        decoders={TFDS_IMAGE_KEY: tfds.decode.SkipDecoding()},
        read_config=read_config)
    return ds.map(no_autograph(lambda e: {
        'data': e[TFDS_IMAGE_KEY],
        'label': tf.cast(e[TFDS_LABEL_KEY], tf.int32)}))

  def _describe(self, split):
    return lambda pos: f'{self.name} {split} example #{pos}'

  def train_records(self, *, seed, epoch, process_index, process_count, start,
                    end):
    """Positions start..end-1 of this process's records for the epoch."""
    split, n = self._shard(self.train_split, process_index, process_count)
    if n == 0:
      raise DataError(f'Process {process_index} of {process_count} gets no '
                      f'training examples from {self.train_split!r}.')
    key = stateless_key(seed, epoch, process_index)
    ds = self._records(split, shuffle_seed=int(key[0]) & 0x7FFFFFFF)
    ds = ds.shuffle(min(int(self.shuffle_buffer_size), n),
                    seed=int(key[1]) & 0x7FFFFFFF, reshuffle_each_iteration=True)
    ds = ds.repeat().take(end).enumerate().skip(start)
    ds = ds.map(no_autograph(lambda pos, e: {'pos': pos, **e}))
    return ds, self._describe(split)

  def eval_records(self, *, process_index, process_count):
    """This process's part of the eval split, then a sentinel."""
    split, _ = self._shard(self.eval_split, process_index, process_count)
    ds = with_sentinel(self._records(split, shuffle_seed=None))
    return ds, self._describe(split)
