"""Where a run's scalars go: TensorBoard summaries always (written by process
0), the console only at `--verbosity=1` (absl's `-v 1`) or more.

At the default verbosity the loops print their own one-line summaries (one per
evaluation) instead of every scalar, so that a run's console says what it does
and its results; TensorBoard keeps every scalar, image and hyper-parameter.
"""

from absl import logging
from clu import metric_writers


def training_clause(step: int, loss: float, top1: float, rate: float,
                    unit: str) -> str:
  """'; training at step N: loss L, top-1 T%, R UNIT/s': the last training
  report's part of the loops' console line per evaluation."""
  return (f'; training at step {step}: loss {loss:.4f}, top-1 '
          f'{100 * top1:.2f}%, {rate:.0f} {unit}/s')


def open_writer(logdir: str, *, is_main: bool = True) -> metric_writers.MultiWriter:
  """An asynchronous writer: TensorBoard in `logdir` when `is_main`, plus the
  console (clu's LoggingWriter) when absl's verbosity is 1 or more."""
  writers = []
  if is_main:
    writers.append(metric_writers.SummaryWriter(logdir))
  if logging.get_verbosity() >= 1:
    writers.append(metric_writers.LoggingWriter())
  return metric_writers.AsyncMultiWriter(writers)
