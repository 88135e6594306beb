"""The proposals of a run's splits, computed once and cached (--mode=proposals,
and the first step of training and evaluation).

Each process computes the proposals of its shard of each split (`data.py`'s
even parts), with `num_workers` selective-search processes, into
`config.proposals.dir/<split>/` (default WORKDIR/proposals/<split>/). Images
that already have a file are skipped, so a killed job continues where it
stopped and a finished one costs a pass over the images. Unreadable images are
skipped and counted. With `proposals.method='precomputed'` nothing is computed:
every image of the splits must have a user-supplied file, checked here.
"""

import collections
import dataclasses
import os

from sppnet_jax.core.data import corrupt
from sppnet_jax.detection import data, proposals
from sppnet_jax.detection.config import proposal_dir, splits_of
from sppnet_jax.errors import DataError

PRESETS = {'rcnn_fast': proposals.RCNN_FAST,
           'opencv_fast': proposals.OPENCV_FAST}


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


def settings_of(config) -> proposals.SelectiveSearchSettings:
  return dataclasses.replace(PRESETS[config.proposals.preset],
                             max_boxes=int(config.proposals.max_boxes),
                             min_side=int(config.proposals.min_side),
                             seed=int(config.seed))


def _workers(config) -> int:
  workers = int(config.proposals.num_workers)
  return (os.cpu_count() or 1) if workers == -1 else workers


def _check_precomputed(source, split, store, process_index, process_count):
  counts = collections.Counter()
  for example in data.decoded_examples(source, split,
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
  source = data.open_source(config)
  reports = []
  for split in splits_of(config) if splits is None else splits:
    directory = proposal_dir(config, workdir, split)
    store = proposals.ProposalStore(directory)
    skipped_before = corrupt.num_skipped_images(split)
    if config.proposals.method == 'precomputed':
      if not os.path.isdir(directory):
        raise DataError(f'No proposal folder {directory}: put the user-supplied '
                        f'<image id>.npz files of split {split!r} there.')
      images = _check_precomputed(source, split, store, process_index,
                                  process_count)
      stats = proposals.ProposalStats(computed=0, cached=images, boxes=0,
                                      seconds=0.0)
    else:
      examples = ((e.image_id, e.image) for e in data.decoded_examples(
          source, split, process_index=process_index,
          process_count=process_count))
      stats = proposals.compute_proposals(examples, store, settings_of(config),
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
