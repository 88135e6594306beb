"""The detection task's entry point behind main.py: checks the config, starts
JAX (one process or many), runs the mode and prints its one-line results.

Modes: 'train' (every stage in order, each resuming, then the test split's
score; pipeline.py), 'eval' (the test split's score), 'detect' (image files;
inference/detect_mode.py), 'export' (the detector as jax.export artefacts;
inference/export.py), 'proposals' (only the region proposals;
proposals/job.py).
"""

import math
import sys

from sppnet_jax import runtime
from sppnet_jax.core.data import image_files
from sppnet_jax.detection.config import validate_config
from sppnet_jax.errors import ConfigError

MODES = ('train', 'eval', 'detect', 'export', 'proposals')


def run(mode: str, config, workdir: str, *, images=(),
        distributed: dict | None = None) -> int:
  """Runs one mode; returns the exit status."""
  validate_config(config)
  if mode not in MODES:
    raise ConfigError(f'--mode={mode} is not a detection mode: use one of '
                      f'{", ".join(MODES)} with a detection recipe.')
  if mode == 'detect':  # Before anything loads, as --mode=predict.
    images = image_files.named_images(images)
  runtime.keep_tensorflow_off_accelerators()
  runtime.start_jax(**(distributed or {}))
  # Imported once JAX has started (jax.distributed must come first).
  from sppnet_jax.core.preemption import Preempted  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.train_loop import PREEMPTED_EXIT  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection import pipeline, trained  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.evaluation import report  # pylint: disable=g-import-not-at-top
  if mode == 'proposals':
    return _proposals(config, workdir)
  if mode == 'export':
    print(trained.export(config, workdir), flush=True)
    return 0
  if mode == 'detect':
    unreadable = trained.detect(config, workdir, images)
    if unreadable:  # As --mode=predict: the others were done, exit status 1.
      print(f'{unreadable} unreadable images skipped', file=sys.stderr)
    return 1 if unreadable else 0
  try:
    result = (pipeline.train(config, workdir) if mode == 'train'
              else pipeline.evaluate_only(config, workdir))
  except Preempted as stopped:
    print(stopped, file=sys.stderr, flush=True)
    return PREEMPTED_EXIT
  print(report.format_table(result.voc, result.coco), flush=True)
  print(pipeline.summary_line(result), flush=True)
  return 0


def _proposals(config, workdir: str) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection import pipeline  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.data import sources  # pylint: disable=g-import-not-at-top
  # Every process, as classification does: hosts need not share a disk, and
  # the build is safe against a race (build_once).
  sources.prepare_data(config)
  reports = pipeline.make_proposals(config, workdir)
  where = (f' (process {jax.process_index()} of {jax.process_count()})'
           if jax.process_count() > 1 else '')
  for r in reports:
    boxes = ('' if math.isnan(r.mean_boxes)
             else f', {r.mean_boxes:.1f} boxes per new image')
    skipped = (f', {r.skipped_images} unreadable images skipped'
               if r.skipped_images else '')
    print(f'proposals of {r.split}{where}: {r.images} images, {r.computed} '
          f'computed, {r.cached} already there{boxes}{skipped}, in '
          f'{r.seconds:.1f} s -> {r.directory}', flush=True)
  return 0
