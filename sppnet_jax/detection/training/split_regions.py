"""A split's labelled regions for fine-tuning: each cached image's proposals
with its ground truth (`sampling.label_regions`), and a sampled batch of
regions of many images pooled from their cached conv5 maps.

Pooling is `features.pooling`'s (each box at its scale, projected onto that
scale's map, exact region SPP); the boxes of one image (and one side of the
mirror) are pooled together, so a fine-tuning batch of 128 regions costs one
pooling call per distinct image in it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from sppnet_jax.detection import boxes as box_lib
from sppnet_jax.detection.features.cache import CachedImage, Conv5Store
from sppnet_jax.detection.features.pooling import PoolingSettings, pool_boxes
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.training import sampling


def pool_image(image: CachedImage, boxes, settings: PoolingSettings, *,
               flipped: bool = False, box_bucket: int = 256) -> np.ndarray:
  """(R, D) pooled vectors of (R, 4) boxes of the cached image (boxes of the
  mirrored image when `flipped`)."""
  return pool_boxes(image.scaled_maps(flipped), boxes, image.height,
                    image.width, box_bucket=box_bucket, **settings.options())


@dataclasses.dataclass(frozen=True)
class SplitRegions:
  """The labelled regions of every cached image of a split."""
  image_ids: list
  labels: list  # sampling.RegionLabels per image
  sizes: np.ndarray  # (N, 2) height, width


def load_split_regions(store: Conv5Store, proposal_store: ProposalStore, *,
                       add_ground_truth: bool, use_difficult: bool,
                       image_ids: Sequence[str] | None = None) -> SplitRegions:
  """Reads the ground truth from the conv5 cache (not the maps) and the
  proposals of every cached image (or of `image_ids`)."""
  image_ids = store.image_ids() if image_ids is None else list(image_ids)
  labels, sizes = [], []
  for image_id in image_ids:
    cached = store.load(image_id, with_maps=False)
    proposals = proposal_store.load(image_id, (cached.height, cached.width))
    labels.append(sampling.label_regions(
        proposals, cached.gt_boxes, cached.gt_labels, cached.gt_difficult,
        add_ground_truth=add_ground_truth, use_difficult=use_difficult))
    sizes.append((cached.height, cached.width))
  return SplitRegions(image_ids, labels,
                      np.asarray(sizes, np.int64).reshape(-1, 2))


def pool_batch(batch: sampling.RegionBatch, regions: SplitRegions, maps,
               settings: PoolingSettings) -> np.ndarray:
  """(n, D) pooled vectors of a `RegionSampler` batch, in its order; `maps`
  gives the `CachedImage` of an image index (a `cache.LruImageCache`)."""
  out = None
  keys = batch.images.astype(np.int64) * 2 + batch.flips
  for key in np.unique(keys):
    rows = np.flatnonzero(keys == key)
    index, flipped = int(key // 2), bool(key % 2)
    image = maps(index)
    boxes = regions.labels[index].boxes[batch.regions[rows]]
    if flipped:
      boxes = box_lib.flip_left_right(boxes, image.width)
    pooled = pool_image(image, boxes, settings, flipped=flipped, box_bucket=8)
    if out is None:
      out = np.zeros((len(keys), pooled.shape[1]), np.float32)
    out[rows] = pooled
  return out
