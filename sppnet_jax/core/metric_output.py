"""Where a run's scalars go: TensorBoard summaries always (written by process
0), the console only at `--verbosity=1` (absl's `-v 1`) or more.

At the default verbosity the loops print their own one-line summaries (one per
evaluation) instead of every scalar, so that a run's console says what it does
and its results; TensorBoard keeps every scalar, image and hyper-parameter.
"""

from absl import logging
from clu import metric_writers


def log_validation_line(line: str, report_step: int, report: dict, *,
                        prefix: str, unit: str) -> None:
  """Logs a loop's console line per validation: `line` (its metrics) and,
  when `report` (the last training report's scalars, named `prefix` + loss,
  top1 and UNIT_per_sec; step `report_step`) has any, '; training at step N:
  loss L, top-1 T%, R UNIT/s'."""
  if report:
    line += (f'; training at step {report_step}: loss '
             f'{report[prefix + "loss"]:.4f}, top-1 '
             f'{100 * report[prefix + "top1"]:.2f}%, '
             f'{report[f"{prefix}{unit}_per_sec"]:.0f} {unit}/s')
  logging.info('%s.', line)


def open_writer(logdir: str, *, is_main: bool = True) -> metric_writers.MultiWriter:
  """An asynchronous writer: TensorBoard in `logdir` when `is_main`, plus the
  console (clu's LoggingWriter) when absl's verbosity is 1 or more."""
  writers = []
  if is_main:
    writers.append(metric_writers.SummaryWriter(logdir))
  if logging.get_verbosity() >= 1:
    writers.append(metric_writers.LoggingWriter())
  return metric_writers.AsyncMultiWriter(writers)
