"""The skeleton every training loop of the project shares (classification's
`train.py`, detection's `training/stage_loop.py`): after each step, merge
the step's metric sums, decide whether this step logs, is the last one or
was preempted, check the loss before anything is saved, and stop cleanly
after saving on a termination signal (the same command then resumes:
`PREEMPTED_EXIT`); and the periodic validation that keeps the best states
(`PeriodicValidation`).

Invariants: a diverged loss raises before the state of that step is saved, so
the latest checkpoint is always the last good one; every process decides
`preempted` identically (one process: the SIGTERM flag; several: Orbax's
preemption sync point), so all stop at the same step.
"""

import dataclasses

import flax
import jax
import numpy as np
from clu import metrics

from sppnet_jax.core.preemption import Preempted, StopRequest
from sppnet_jax.errors import TrainingDivergedError

# The exit status of a run stopped by SIGTERM after saving: 128 + SIGTERM, as
# if the signal had ended the process; the same command resumes.
PREEMPTED_EXIT = 143


def average_of(sums: dict, name: str) -> metrics.Average:
  """The clu average of `sums[name]` over `sums['count']` examples (the sums of
  `core.train_state.batch_sums`)."""
  return metrics.Average(total=sums[name], count=sums['count'])


# No `from __future__ import annotations` here: clu reads a Collection's metric
# types from its class annotations, which must stay classes, not strings.
@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
  """Training loss, top-1 and top-5 (averaged over examples) and the last
  learning rate, from the sums of `core.train_state.batch_sums`."""
  loss: metrics.Average.from_output('loss')
  top1: metrics.Average.from_output('top1')
  top5: metrics.Average.from_output('top5')
  learning_rate: metrics.LastValue.from_output('learning_rate')

  @classmethod
  def from_sums(cls, sums: dict) -> 'TrainMetrics':
    return cls.empty().replace(
        loss=average_of(sums, 'loss'), top1=average_of(sums, 'top1'),
        top5=average_of(sums, 'top5'),
        learning_rate=metrics.LastValue(value=sums['learning_rate']))


@dataclasses.dataclass(frozen=True)
class StepEvents:
  """What the step just taken is: `preempted` (stop after saving), `final`
  (the last step, or preempted) and `log` (report the metrics)."""
  preempted: bool
  final: bool
  log: bool


class LoopSkeleton:
  """The per-step bookkeeping of a training loop.

  Args:
    store: the run's `core.checkpoints.Checkpoints` (asked about preemption,
      waited on before stopping).
    stop: the run's `StopRequest` (SIGTERM noted on one process).
    total_steps: the step count at which training ends.
    log_every_steps: metrics are reported every this many steps and at the
      final step.
    divergence_hint: the end of the one-line error a non-finite loss raises:
      what to change before rerunning.
    what: the loop's name in messages ('training', 'fine-tuning').
  """

  def __init__(self, store, stop: StopRequest, *, total_steps: int,
               log_every_steps: int, divergence_hint: str,
               what: str = 'training'):
    self.store, self.stop = store, stop
    self.total_steps, self.log_every_steps = total_steps, log_every_steps
    self.divergence_hint, self.what = divergence_hint, what
    self._metrics: TrainMetrics | None = None

  def after_step(self, step: int, sums: dict) -> StepEvents:
    """Merges the sums of the step that brought the state to `step`."""
    new = TrainMetrics.from_sums(sums)
    self._metrics = new if self._metrics is None else self._metrics.merge(new)
    preempted = bool(self.stop.received or self.store.reached_preemption(step))
    final = step == self.total_steps or preempted
    return StepEvents(preempted, final,
                      step % self.log_every_steps == 0 or final)

  def values(self, step: int) -> dict:
    """The merged metrics since the last `reset`, on the host; raises
    TrainingDivergedError (before anything is saved) if the loss is not
    finite."""
    values = jax.device_get(self._metrics.compute())
    if not np.isfinite(values['loss']):
      raise TrainingDivergedError(
          f'the {self.what} loss is {values["loss"]} by step {step}: '
          f'{self.divergence_hint}')
    return values

  def reset(self) -> None:
    """Starts the next reporting period."""
    self._metrics = None

  def stop_if_preempted(self, step: int, events: StepEvents) -> None:
    """After the step's save: waits for it and raises `Preempted`."""
    if events.preempted:
      self.store.wait()
      raise Preempted(f'{self.what} stopped at step {step} on a termination '
                      'signal, after saving; the same command resumes there.')


class PeriodicValidation:
  """A loop's validation: run at the steps `due` names, each result written
  as TensorBoard scalars (`prefix` + metric name), reported by `log` and
  saved with the state as a candidate best (`store.save_best` on the metrics
  `best_keys`, with `save_extra` in its record).

  Invariant: every due step of a run gets a best record, even across a stop
  between its latest save and its validation (`catch_up`), so the best states
  are an uninterrupted run's.

  Args:
    validate: params -> {metric name: float} (None: no validation; nothing
      is ever due).
    due: step -> whether that step is validated.
    store: the run's `core.checkpoints.Checkpoints`.
    writer: the run's clu metric writer.
    log: (step, metrics, report_step, report) -> None, the console's line;
      `report` is the last training report's scalars (step `report_step`),
      {} when there is none.
  """

  def __init__(self, validate, due, store, writer, *, prefix: str,
               best_keys: tuple[str, ...], log, **save_extra):
    self._validate, self._due = validate, due
    self.store, self.writer, self.prefix = store, writer, prefix
    self.best_keys, self.log, self.save_extra = best_keys, log, save_extra

  def due(self, step: int) -> bool:
    return self._validate is not None and self._due(step)

  def __call__(self, step: int, state, report_step: int,
               report: dict) -> dict:
    """Validates `state` (at `step`); returns the metrics."""
    metrics = self._validate(state.params)
    self.writer.write_scalars(
        step, {f'{self.prefix}{k}': v for k, v in metrics.items()})
    self.log(step, metrics, report_step, report)
    self.store.save_best(step, state, {k: metrics[k] for k in self.best_keys},
                         **self.save_extra)
    return metrics

  def catch_up(self, step: int, state) -> dict:
    """At a resume: validates `step` when it was due and has no best record
    (the run stopped between its save and its validation); returns the
    metrics, {} when nothing was run."""
    if step > 0 and self.due(step) and not self.store.evaluated(step):
      return self(step, state, step, {})
    return {}


def every_steps(every: int, total_steps: int):
  """The `due` of a validation every `every` steps and at the last."""
  return lambda step: step % every == 0 or step == total_steps
