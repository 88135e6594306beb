"""The conv5 cache of detection: one file per image holding its conv5 maps at
every scale (and those of the mirrored image), with its ground truth.

The paper freezes conv1-conv5, so the maps of an image never change while fc6-
fc8, the SVMs and the box regressors train: they are computed once per image
and scale and read back by every later stage. What to cache was measured
(`benchmarks/region_pooling.py` and the figures below): the pooled vectors of
2,000 proposals at 12,800 float16 values are 51 MB per image (256 GB for VOC
2007 trainval), the conv5 maps at 688 are 42 x 56 x 256 float16 = 1.2 MB
(6 GB), and re-pooling a region from its map costs about a tenth of the
fc6/fc7 work it feeds. So the maps are cached and regions pooled on demand.

A file `<image id>.npz` (named by `stage_files.file_name_of`) holds:
  conv5_<k>: (h_k, w_k, C) conv5 of the image resized for scale k
    (`conv5.MultiScaleConv5`), in the config's `features.dtype`;
  conv5_<k>_flip: the same of the mirrored image (when flips are cached);
  resized: (S, 2) int, the resized image's (height, width) per scale;
  height, width: the original image's size;
  gt_boxes (G, 4) float32 (library convention), gt_labels (G,) int32,
  gt_difficult (G,) bool.
Files are written atomically (`stage_files`), so a killed run leaves only
whole files and resumes with the images still missing. A settings record
(`conv5.json`: scales, size step, flips, dtype, backbone) refuses to mix
files made otherwise. The ground truth is stored for the training stages
(region labels, SVM positives, box-regression targets); evaluation reads its
ground truth from the data source. Every process writes the files of its
shard; every process then reads all of them (fine-tuning samples regions over
the whole training set), so on several hosts `features.dir` must be a shared
folder.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from typing import Iterable, Sequence

import numpy as np

from sppnet_jax.detection import stage_files
from sppnet_jax.detection.features.conv5 import MultiScaleConv5, ScaledMap
from sppnet_jax.errors import DataError

SETTINGS_FILE = 'conv5.json'
_GROUND_TRUTH = ('height', 'width', 'resized', 'gt_boxes', 'gt_labels',
                 'gt_difficult')


@dataclasses.dataclass(frozen=True)
class CachedImage:
  """What the cache holds for one image (arrays as stored)."""
  image_id: str
  height: int
  width: int
  maps: tuple  # per scale, (h, w, C)
  flipped: tuple  # per scale, of the mirrored image; () when not cached
  resized: np.ndarray  # (S, 2)
  gt_boxes: np.ndarray
  gt_labels: np.ndarray
  gt_difficult: np.ndarray

  @property
  def nbytes(self) -> int:
    return sum(m.nbytes for m in self.maps + self.flipped)

  def scaled_maps(self, flipped: bool = False) -> list[ScaledMap]:
    """The maps as region pooling takes them (float32)."""
    maps = self.flipped if flipped else self.maps
    if flipped and not maps:
      raise DataError(f'image {self.image_id}: the cache holds no mirrored '
                      'maps; remake it with flips (features.dir) or set '
                      '--config.finetune.flip=False.')
    return [ScaledMap(np.asarray(m, np.float32), r[0] / self.height,
                      r[1] / self.width)
            for m, r in zip(maps, self.resized)]


class Conv5Store:
  """The folder of one split's cached maps."""

  def __init__(self, directory: str):
    self.directory = directory

  def path(self, image_id: str) -> str:
    return os.path.join(self.directory, stage_files.file_name_of(image_id))

  def has(self, image_id: str) -> bool:
    return os.path.exists(self.path(image_id))

  def image_ids(self) -> list[str]:
    """Every cached image, in file-name order (the same on every process)."""
    return stage_files.image_ids_in(self.directory)

  def record_settings(self, settings: dict) -> None:
    """Writes the settings record, or checks the folder's against them."""
    stage_files.record_settings(self.directory, SETTINGS_FILE, settings,
                                'a conv5 cache')

  def save(self, image: CachedImage) -> None:
    arrays = {'height': np.int64(image.height), 'width': np.int64(image.width),
              'resized': np.asarray(image.resized, np.int64),
              'gt_boxes': np.asarray(image.gt_boxes, np.float32).reshape(-1, 4),
              'gt_labels': np.asarray(image.gt_labels, np.int32),
              'gt_difficult': np.asarray(image.gt_difficult, bool)}
    for k, m in enumerate(image.maps):
      arrays[f'conv5_{k}'] = m
    for k, m in enumerate(image.flipped):
      arrays[f'conv5_{k}_flip'] = m
    stage_files.save_npz(self.path(image.image_id), **arrays)

  def load(self, image_id: str, *, with_maps: bool = True) -> CachedImage:
    """The cached image; without its maps (`with_maps=False`) only its size
    and ground truth are read."""

    def keys(files):
      count = sum(1 for k in files
                  if k.startswith('conv5_') and not k.endswith('_flip'))
      maps = [f'conv5_{k}' for k in range(count)]
      flipped = [f'{m}_flip' for m in maps if f'{m}_flip' in files]
      return list(_GROUND_TRUTH) + (maps + flipped if with_maps else [])

    f = stage_files.load_npz(
        self.path(image_id), keys, what=f'cached conv5 for image {image_id}',
        remake='rerun the features stage (--mode=train makes it)')
    count = int(f['resized'].shape[0])
    maps = tuple(f[f'conv5_{k}'] for k in range(count)) if with_maps else ()
    flipped = (tuple(f[f'conv5_{k}_flip'] for k in range(count))
               if with_maps and 'conv5_0_flip' in f else ())
    return CachedImage(image_id, int(f['height']), int(f['width']), maps,
                       flipped, f['resized'], f['gt_boxes'], f['gt_labels'],
                       f['gt_difficult'])


def cache_settings(config, backbone_path: str, flip: bool) -> dict:
  """The record of how a split's maps are made (`flip`: mirrored maps too)."""
  return {'scales': list(config.detection.scales),
          'size_step': int(config.detection.size_step),
          'flip': bool(flip), 'dtype': config.features.dtype,
          'backbone': backbone_path}


@dataclasses.dataclass(frozen=True)
class CacheStats:
  computed: int
  cached: int
  seconds: float
  bytes_written: int


def compute_conv5(examples: Iterable, store: Conv5Store,
                  conv5: MultiScaleConv5, *, flip: bool,
                  dtype: str = 'float16') -> CacheStats:
  """Caches the maps of every example (`data.sources.DetectionExample`) not
  yet in the store; returns what was done."""
  computed = cached = written = 0
  start = time.perf_counter()
  for example in examples:
    if store.has(example.image_id):
      cached += 1
      continue
    image = example.image
    as_stored = lambda maps: tuple(np.asarray(m.conv5).astype(dtype)
                                   for m in maps)
    maps = conv5(image)
    flipped = as_stored(conv5(np.ascontiguousarray(image[:, ::-1]))) if flip else ()
    resized = np.array([conv5.resized_shape(*image.shape[:2], s)
                        for s in conv5.scales], np.int64)
    entry = CachedImage(example.image_id, image.shape[0], image.shape[1],
                        as_stored(maps), flipped, resized, example.boxes,
                        example.labels, example.difficult)
    store.save(entry)
    computed += 1
    written += entry.nbytes
  return CacheStats(computed, cached, time.perf_counter() - start, written)


class LruImageCache:
  """Cached images (`CachedImage`, by index into `image_ids`) kept in memory
  up to `max_bytes` of maps, the least recently used dropped first
  (fine-tuning reads random images every step)."""

  def __init__(self, store: Conv5Store, image_ids: Sequence[str],
               max_bytes: int):
    self.store, self.image_ids, self.max_bytes = store, list(image_ids), max_bytes
    self._entries: collections.OrderedDict = collections.OrderedDict()
    self._bytes = 0

  def __call__(self, index: int) -> CachedImage:
    entry = self._entries.get(index)
    if entry is not None:
      self._entries.move_to_end(index)
      return entry
    entry = self.store.load(self.image_ids[index])
    self._entries[index] = entry
    self._bytes += entry.nbytes
    while self._bytes > self.max_bytes and len(self._entries) > 1:
      _, dropped = self._entries.popitem(last=False)
      self._bytes -= dropped.nbytes
    return entry
