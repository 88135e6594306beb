"""What reaches the console: library chatter filtered (runtime.quiet_library_logs)
and scalars on TensorBoard only unless --verbosity=1 (core.metric_output)."""

import glob
import logging
import os

from absl import logging as absl_logging

from sppnet_jax import runtime
from sppnet_jax.core import metric_output


def _record(name: str, pathname: str, level: int, message: str):
  return logging.LogRecord(name, level, pathname, 1, message, None, None)


def test_library_chatter_is_dropped_and_warnings_kept():
  quiet = runtime._QuietLibraries()  # pylint: disable=protected-access
  orbax = '/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py'
  clu = '/venv/lib/python3.11/site-packages/clu/platform/local.py'
  xla_bridge = '/venv/lib/python3.11/site-packages/jax/_src/xla_bridge.py'
  dropped = [
      _record('jax._src.xla_bridge', xla_bridge, logging.INFO,
              "Unable to initialize backend 'tpu': INTERNAL: Failed to open "
              'libtpu.so'),
      _record('absl', orbax, logging.INFO, 'Saving checkpoint at step 200'),
      _record('absl', orbax, logging.WARNING,
              'Given directory is read only=/tmp/run/best'),
      _record('absl', orbax, logging.WARNING,
              'CheckpointManagerOptions.read_only=True, setting '
              'save_interval_steps=0.'),
      _record('absl', clu, logging.INFO,
              'Created artifact [10] Profile of type ArtifactType.URL and '
              'value None.'),
  ]
  kept = [
      _record('jax._src.xla_bridge', xla_bridge, logging.WARNING,
              'An NVIDIA GPU may be present on this machine, but a CUDA-enabled '
              'jaxlib is not installed.'),
      _record('absl', orbax, logging.WARNING, 'Checkpoint save failed: disk full'),
      _record('absl', clu, logging.INFO,
              'Setting work unit notes: 10.2 steps/s, 54.7% (611/1116), ETA: 0m'),
      _record('absl', '/repo/sppnet_jax/classification/train.py', logging.INFO,
              'Compiled the train step for 112x112 inputs in 3.4 s.'),
  ]
  assert [quiet.filter(r) for r in dropped] == [False] * len(dropped)
  assert [quiet.filter(r) for r in kept] == [True] * len(kept)


def _written_to_console(tmp_path, caplog, verbosity: int) -> bool:
  previous = absl_logging.get_verbosity()
  absl_logging.set_verbosity(verbosity)
  try:
    with caplog.at_level(logging.INFO):
      writer = metric_output.open_writer(str(tmp_path))
      writer.write_scalars(7, {'train_loss': 0.25})
      writer.close()
  finally:
    absl_logging.set_verbosity(previous)
  assert glob.glob(os.path.join(tmp_path, 'events.out.tfevents.*'))
  return any('train_loss=0.25' in r.getMessage() for r in caplog.records)


def test_scalars_reach_the_console_only_when_verbose(tmp_path, caplog):
  assert not _written_to_console(tmp_path / 'quiet', caplog, absl_logging.INFO)
  assert _written_to_console(tmp_path / 'verbose', caplog, absl_logging.DEBUG)


def test_other_processes_write_no_summaries(tmp_path):
  writer = metric_output.open_writer(str(tmp_path), is_main=False)
  writer.write_scalars(1, {'loss': 1.0})
  writer.close()
  assert not os.listdir(tmp_path)


def test_the_validation_line_with_and_without_a_training_report(monkeypatch):
  lines = []
  monkeypatch.setattr(metric_output.logging, 'info',
                      lambda message, *args: lines.append(message % args))
  report = {'train_loss': 2.61064, 'train_top1': 0.11375,
            'train_images_per_sec': 298.4, 'train_learning_rate': 0.1}
  metric_output.log_validation_line('step 60: top-1 5%', 50, report,
                                    prefix='train_', unit='images')
  metric_output.log_validation_line('step 60: top-1 5%', 50, {},
                                    prefix='train_', unit='images')
  assert lines == [
      'step 60: top-1 5%; training at step 50: loss 2.6106, top-1 11.38%, '
      '298 images/s.', 'step 60: top-1 5%.']
