"""The skeleton every training loop of the project shares (classification's
`train.py`, detection's fine-tuning): after each step, merge the step's metric
sums, decide whether this step logs, is the last one or was preempted, check
the loss before anything is saved, and stop cleanly after saving on a
termination signal (the same command then resumes: `PREEMPTED_EXIT`).

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
