"""The step loop the detection training stages share (fine-tuning,
`finetune.py`; end to end, `end_to_end.py`): per step, the core's
`LoopSkeleton` bookkeeping (metrics, divergence check, preemption), progress
hooks, a report every `log_every_steps` (TensorBoard scalars named
`prefix` + metric, examples per second), the latest checkpoint (with the
stage's training fields, which a resume must match), and validation by mAP
every `eval_every_steps` and at the last step (`core.train_loop.
PeriodicValidation`: the best states by it).

Invariants: the same as the skeleton's (a diverged loss raises before its
state is saved; every process stops at the same step on preemption) and the
validation's (every due step gets a best record, also across a stop between
its save and its validation). On leaving, in every case, the SIGTERM handler
is restored, pending saves are finished and the store is closed.
"""

from __future__ import annotations

import contextlib
import operator
import time
from typing import Callable, Iterable, Iterator

import jax
import numpy as np
from absl import logging
from clu import periodic_actions

from sppnet_jax.core import checkpoints, metric_output
from sppnet_jax.core.preemption import StopRequest
from sppnet_jax.core.train_loop import (LoopSkeleton, PeriodicValidation,
                                        every_steps)


class StageLoop:
  """What one stage's steps need, open for the length of a `stage_loop`."""

  def __init__(self, store: checkpoints.Checkpoints, writer, stop, settings,
               *, prefix: str, unit: str, examples_per_step: int,
               training_fields: dict, validation: PeriodicValidation,
               loop: LoopSkeleton):
    self.store, self.writer, self.stop = store, writer, stop
    self.settings, self.prefix, self.unit = settings, prefix, unit
    self.examples_per_step = examples_per_step
    self.training_fields, self.validation, self.loop = (training_fields,
                                                        validation, loop)

  def run(self, batches: Iterable, train_step, state, step: int, *,
          part_names: tuple[str, ...] = (),
          report: Callable[[int, dict], None] | None = None) -> int:
    """Runs `train_step(state, batch) -> (state, sums)` over `batches` from
    `step`; returns the last step. `part_names`: further per-example sums
    of the step (besides the skeleton's loss and top-1) averaged into each
    report; `report(step, scalars)`: a console line per report."""
    hooks = ([periodic_actions.ReportProgress(
        num_train_steps=self.settings.num_steps, writer=self.writer)]
             if jax.process_index() == 0 else [])
    last_log, last_step = time.perf_counter(), step
    last_report, parts = {}, None  # The last report; part sums since.
    for batch in batches:
      state, sums = train_step(state, batch)
      step += 1
      events = self.loop.after_step(step, sums)
      if part_names:
        new = {k: sums[k] for k in part_names + ('count',)}
        parts = new if parts is None else jax.tree.map(operator.add, parts,
                                                       new)
      for hook in hooks:
        hook(step)
      if events.log:
        now = time.perf_counter()
        scalars = {f'{self.prefix}{k}': float(v)
                   for k, v in self.loop.values(step).items()}
        if parts is not None:
          count = max(float(parts['count']), 1.0)
          scalars.update({f'{self.prefix}{k}': float(parts[k]) / count
                          for k in part_names})
        scalars[f'{self.prefix}{self.unit}_per_sec'] = (
            (step - last_step) * self.examples_per_step
            / max(now - last_log, 1e-9))
        self.writer.write_scalars(step, scalars)
        self.writer.flush()
        if report is not None:
          report(step, scalars)
        self.loop.reset()
        last_report, parts = scalars, None
        last_log, last_step = now, step
      self.store.save_latest(step, state, force=events.final,
                             training_fields=self.training_fields)
      self.loop.stop_if_preempted(step, events)
      if self.validation.due(step):
        self.validation(step, state, last_step, last_report)
    return step


@contextlib.contextmanager
def stage_loop(store: checkpoints.Checkpoints, folder: str, settings,
               initial_state, step: int, *, what: str, prefix: str,
               unit: str, examples_per_step: int, training_fields: dict,
               learning_rate_flag: str,
               validate: Callable[[dict], float] | None,
               log_validation: Callable[[int, float, int, dict], None]
               ) -> Iterator[StageLoop]:
  """The loop of a stage whose state (`initial_state`, at `step`) `store`
  holds, writing its scalars in `folder`. `settings`: the stage's config
  section (num_steps, log_every_steps, eval_every_steps); `validate(params)`
  (NumPy parameters): the validation mAP (None: no validation);
  `log_validation(step, mAP, report_step, report)`: its console line, with
  the last training report's scalars ({} when none). A resumed step that was
  due a validation and has none is validated on entering."""
  writer = metric_output.open_writer(folder,
                                     is_main=jax.process_index() == 0)
  stop = StopRequest()
  validation = PeriodicValidation(
      None if validate is None else (lambda params: {'map': validate(
          jax.tree.map(np.asarray, params))}),
      every_steps(settings.eval_every_steps, settings.num_steps), store,
      writer, prefix=f'{prefix}val_', best_keys=('map',),
      log=lambda s, metrics, r, report: log_validation(s, metrics['map'], r,
                                                       report),
      training_fields=training_fields)
  loop = LoopSkeleton(
      store, stop, total_steps=settings.num_steps,
      log_every_steps=settings.log_every_steps, what=what,
      divergence_hint=f'lower --config.{learning_rate_flag} and rerun (it '
      'resumes from the last good checkpoint).')
  try:
    validation.catch_up(step, initial_state)
    yield StageLoop(store, writer, stop, settings, prefix=prefix, unit=unit,
                    examples_per_step=examples_per_step,
                    training_fields=training_fields, validation=validation,
                    loop=loop)
  finally:
    stop.restore()
    store.wait()
    store.close()
    writer.flush()


def log_resume(what: str, step: int, num_steps: int) -> None:
  if 0 < step < num_steps:
    logging.info('%s resumes from step %d.', what, step)
