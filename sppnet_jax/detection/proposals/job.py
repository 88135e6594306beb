"""Filling proposal stores: `compute_proposals` (any images, in parallel
worker processes, resumable) and `make_proposals` (a run's splits, each
process its shard; --mode=proposals, and the first step of training and
evaluation).

Each process computes the proposals of its shard of each split (`data/sources.py`'s
even parts), with `num_workers` selective-search processes, into
`config.proposals.dir/<split>/` (default WORKDIR/proposals/<split>/). Images
that already have a file are skipped, so a killed job continues where it
stopped and a finished one costs a pass over the images. Unreadable images are
skipped and counted. With `proposals.method='precomputed'` nothing is computed:
every image of the splits must have a user-supplied file, checked here.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import time
from typing import Iterable

from absl import logging
import cv2
import numpy as np

from sppnet_jax.core.data import corrupt
from sppnet_jax.detection import stage_files
from sppnet_jax.detection.config import proposal_dir, splits_of
from sppnet_jax.detection.data import sources
from sppnet_jax.detection.proposals.selective_search import (
    OPENCV_FAST, RCNN_FAST, SelectiveSearchSettings, is_int, selective_search)
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.errors import ConfigError, DataError

SETTINGS_FILE = 'selective_search.json'


@dataclasses.dataclass(frozen=True)
class ProposalStats:
  """What one `compute_proposals` call did."""
  computed: int  # images whose proposals were computed and saved now
  cached: int  # images already in the store (or repeated in `examples`)
  boxes: int  # boxes saved now, over all computed images
  seconds: float


def _start_worker() -> None:
  cv2.setNumThreads(1)  # one image per process: no nested thread pools


def _propose(job):
  image_id, image, settings = job
  return image_id, selective_search(image, settings)


def compute_proposals(examples: Iterable[tuple[str, np.ndarray]],
                      store: ProposalStore,
                      settings: SelectiveSearchSettings = RCNN_FAST, *,
                      num_workers: int, log_every: int = 100) -> ProposalStats:
  """Computes and saves the proposals of every image not yet in `store`.

  A killed job resumes where it stopped: each image's file is saved (atomically)
  as soon as it is computed, and images with a file are skipped. The settings
  are recorded in the directory (`SETTINGS_FILE`); other settings there raise a
  ConfigError.

  Args:
    examples: (image_id, uint8 (H, W, 3) RGB image) pairs, e.g. this process's
      shard; images are pulled only as workers free up, so at most
      2 * num_workers images are held at once.
    store: where the proposals go.
    settings: see `SelectiveSearchSettings`.
    num_workers: worker processes ('spawn': the caller may hold JAX / TF
      threads, which fork does not copy); 0 computes in this process.
    log_every: a progress line every this many computed images.

  Returns:
    The counts and the wall time.
  """
  if not is_int(num_workers) or num_workers < 0:
    raise ConfigError(f'num_workers must be an integer >= 0, got '
                      f'{num_workers!r}.')
  if not is_int(log_every) or log_every < 1:
    raise ConfigError(f'log_every must be an integer >= 1, got {log_every!r}.')
  stage_files.record_settings(
      store.directory, SETTINGS_FILE, dataclasses.asdict(settings),
      'proposals')
  start = time.perf_counter()
  counts = {'computed': 0, 'cached': 0, 'boxes': 0}
  pending_ids = set()

  def saved(image_id, boxes):
    store.save(image_id, boxes)
    pending_ids.discard(image_id)
    counts['computed'] += 1
    counts['boxes'] += len(boxes)
    if counts['computed'] % log_every == 0:
      elapsed = time.perf_counter() - start
      logging.info('Proposals: %d images computed, %d cached, %.2f images/s.',
                   counts['computed'], counts['cached'],
                   counts['computed'] / elapsed)

  def todo():
    for image_id, image in examples:
      if image_id in pending_ids or store.has(image_id):
        counts['cached'] += 1
        continue
      pending_ids.add(image_id)
      yield image_id, image

  if num_workers == 0:
    for image_id, image in todo():
      saved(image_id, selective_search(image, settings))
  else:
    context = multiprocessing.get_context('spawn')
    in_flight = set()
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=context, initializer=_start_worker) as pool:
      try:
        for image_id, image in todo():
          in_flight.add(pool.submit(_propose, (image_id, image, settings)))
          # Save whatever is done at each step; block only to keep at most
          # 2 * num_workers images in flight (memory stays flat).
          done = {f for f in in_flight if f.done()}
          if len(in_flight) - len(done) >= 2 * num_workers:
            done, _ = concurrent.futures.wait(
                in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
          in_flight -= done
          for future in done:
            saved(*future.result())
        for future in concurrent.futures.as_completed(in_flight):
          saved(*future.result())
      except BaseException:
        for future in in_flight:
          future.cancel()
        raise
  seconds = time.perf_counter() - start
  logging.debug('Proposals in %s: %d images computed (%.2f images/s), %d '
               'cached.',
               store.directory, counts['computed'],
               counts['computed'] / max(seconds, 1e-9), counts['cached'])
  return ProposalStats(seconds=seconds, **counts)


PRESETS = {'rcnn_fast': RCNN_FAST, 'opencv_fast': OPENCV_FAST}


@dataclasses.dataclass(frozen=True)
class SplitReport:
  """One split's proposals on this process."""
  split: str
  directory: str
  images: int  # readable images of this process's shard
  computed: int
  cached: int
  skipped_images: int  # unreadable
  mean_boxes: float  # over the images computed now (nan if none)
  seconds: float


def settings_of(config) -> SelectiveSearchSettings:
  return dataclasses.replace(PRESETS[config.proposals.preset],
                             max_boxes=int(config.proposals.max_boxes),
                             min_side=int(config.proposals.min_side),
                             seed=int(config.seed))


def _workers(config) -> int:
  workers = int(config.proposals.num_workers)
  return (os.cpu_count() or 1) if workers == -1 else workers


def _check_precomputed(source, split, store, process_index, process_count):
  counts = collections.Counter()
  for example in sources.decoded_examples(source, split,
                                       process_index=process_index,
                                       process_count=process_count,
                                       stats=counts):
    if not store.has(example.image_id):
      store.load(example.image_id)  # the one-line DataError that says what to do
  return counts['images']


def make_proposals(config, workdir: str, *, process_index: int = 0,
                   process_count: int = 1,
                   splits=None) -> list[SplitReport]:
  """Computes (or checks) the proposals of `splits` (default: every split
  the run reads) for this process's shards."""
  source = sources.open_source(config)
  reports = []
  for split in splits_of(config) if splits is None else splits:
    directory = proposal_dir(config, workdir, split)
    store = ProposalStore(directory)
    skipped_before = corrupt.num_skipped_images(split)
    if config.proposals.method == 'precomputed':
      if not os.path.isdir(directory):
        raise DataError(f'No proposal folder {directory}: put the user-supplied '
                        f'<image id>.npz files of split {split!r} there.')
      images = _check_precomputed(source, split, store, process_index,
                                  process_count)
      stats = ProposalStats(computed=0, cached=images, boxes=0,
                                      seconds=0.0)
    else:
      examples = ((e.image_id, e.image) for e in sources.decoded_examples(
          source, split, process_index=process_index,
          process_count=process_count))
      stats = compute_proposals(examples, store, settings_of(config),
                                          num_workers=_workers(config))
    reports.append(SplitReport(
        split=split, directory=directory,
        images=stats.computed + stats.cached, computed=stats.computed,
        cached=stats.cached,
        skipped_images=corrupt.num_skipped_images(split) - skipped_before,
        mean_boxes=(stats.boxes / stats.computed if stats.computed
                    else float('nan')),
        seconds=stats.seconds))
  return reports
