"""Where a run's scalars go: TensorBoard summaries always (written by process
0), the console only at `--verbosity=1` (absl's `-v 1`) or more.

At the default verbosity the loops print their own one-line summaries (one per
evaluation) instead of every scalar, so that a run's console says what it does
and its results; TensorBoard keeps every scalar, image and hyper-parameter.
"""

from absl import logging
from clu import metric_writers


def open_writer(logdir: str, *, is_main: bool = True) -> metric_writers.MultiWriter:
  """An asynchronous writer: TensorBoard in `logdir` when `is_main`, plus the
  console (clu's LoggingWriter) when absl's verbosity is 1 or more."""
  writers = []
  if is_main:
    writers.append(metric_writers.SummaryWriter(logdir))
  if logging.get_verbosity() >= 1:
    writers.append(metric_writers.LoggingWriter())
  return metric_writers.AsyncMultiWriter(writers)
