"""The detection task's entry point behind main.py: checks the config, starts
JAX (one process or many), runs the mode and prints its one-line results.

Modes so far: 'proposals' (compute or check the region proposals of the train
and eval splits; see proposal_job.py).
"""

import math

from sppnet_jax import runtime
from sppnet_jax.detection.config import validate_config
from sppnet_jax.errors import ConfigError

MODES = ('proposals',)


def run(mode: str, config, workdir: str, *,
        distributed: dict | None = None) -> int:
  """Runs one mode; returns the exit status."""
  validate_config(config)
  if mode not in MODES:
    raise ConfigError(f'--mode={mode} is not a detection mode yet: use one of '
                      f'{", ".join(MODES)} with a detection recipe.')
  runtime.keep_tensorflow_off_accelerators()
  runtime.start_jax(**(distributed or {}))
  import jax  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.parallel import sync_processes  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection import data, proposal_job  # pylint: disable=g-import-not-at-top
  # Every process, as classification does: hosts need not share a disk, and
  # the build is safe against a race (build_once).
  data.prepare_data(config)
  reports = proposal_job.make_proposals(
      config, workdir, process_index=jax.process_index(),
      process_count=jax.process_count())
  sync_processes('detection_proposals')
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
