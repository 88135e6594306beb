"""The classification task's entry point behind main.py: checks what can be
checked in a second (the config, the checkpoint to read), then starts JAX and
runs the mode, printing its one-line results."""

import json
import os
import sys


from sppnet_jax import runtime
from sppnet_jax.classification.config import validate_config
from sppnet_jax.core import checkpoints
from sppnet_jax.core.data import image_files
from sppnet_jax.errors import ConfigError

MODES = ('train', 'eval', 'export', 'predict')


def run(mode: str, config, workdir: str, *, images=(), json_lines: bool = False,
        from_export: bool = False, distributed: dict | None = None) -> int:
  """Runs one mode (train, eval, export, predict); returns the exit status."""
  validate_config(config)
  if mode not in MODES:
    raise ConfigError(f'--mode={mode} is not a classification mode: use a '
                      'detection recipe (--config=configs/detection/...) or '
                      f'one of {", ".join(MODES)}.')
  workdir = os.path.abspath(os.path.expanduser(workdir))
  cache_dir = os.path.join(workdir, 'jax_cache')
  if mode == 'train':
    os.makedirs(workdir, exist_ok=True)
  else:  # Only reads: fail now, and create nothing, if there is nothing to read.
    if mode == 'predict':
      images = image_files.named_images(images)
    if not (mode == 'predict' and from_export):
      checkpoints.locate_checkpoint(workdir, path=config.eval.checkpoint_path,
                                    step=config.eval.checkpoint_step)
    if not os.path.isdir(cache_dir):
      cache_dir = None
  runtime.keep_tensorflow_off_accelerators()
  runtime.start_jax(cache_dir=cache_dir, **(distributed or {}))
  # Imported once JAX has started (jax.distributed must come first).
  from sppnet_jax.classification import eval_mode, train  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.preemption import Preempted  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.train_loop import PREEMPTED_EXIT  # pylint: disable=g-import-not-at-top
  if mode == 'train':
    try:
      metrics = train.train_and_evaluate(config, workdir)
    except Preempted as stopped:
      print(stopped, file=sys.stderr, flush=True)
      return PREEMPTED_EXIT
    print_metrics('final', metrics)
  elif mode == 'eval':
    metrics = eval_mode.evaluate_checkpoint(config, workdir)
    protocol = metrics['protocol']
    print_metrics(f'checkpoint step {metrics["step"]}'
                  + ('' if protocol == 'center' else f' ({protocol})'), metrics)
  elif mode == 'export':
    _export(config, workdir)
  else:
    return _predict(config, workdir, images, json_lines, from_export)
  return 0


def print_metrics(label: str, metrics: dict) -> None:
  skipped = metrics.get('skipped_images', 0)
  note = f', {skipped} unreadable images skipped' if skipped else ''
  print(f'{label} validation: top-1 {100 * metrics["top1"]:.2f}%, top-5 '
        f'{100 * metrics["top5"]:.2f}%, loss {metrics["loss"]:.4f} on '
        f'{metrics["num_examples"]} examples{note}', flush=True)


def _export(config, workdir: str) -> None:
  from sppnet_jax.classification import export  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification.restore import restore  # pylint: disable=g-import-not-at-top
  restored = restore(config, workdir, with_data=False)
  path = export.export_model(restored.model, restored.params,
                             export.export_sizes(restored.config),
                             os.path.join(workdir, 'export'),
                             class_names=restored.class_names,
                             config=restored.config)
  print(f'exported checkpoint step {restored.step} to {os.path.dirname(path)}',
        flush=True)


def _predict(config, workdir: str, paths, json_lines: bool,
             from_export: bool) -> int:
  """Prints the top-5 of every image file of `paths` (`named_images`); 1 if
  any could not be read, else 0."""
  from sppnet_jax.classification import api, predict  # pylint: disable=g-import-not-at-top
  if from_export:
    classifier = api.from_export(config, os.path.join(workdir, 'export'))
  else:
    classifier = api.from_checkpoint(config, workdir)
  results = predict.predict_files(paths, classifier)
  for result in results:
    if json_lines:
      print(json.dumps(result))
    elif 'error' in result:
      print(f'{result["file"]}: error: {result["error"]}')
    else:
      print(f'{result["file"]}: ' + ', '.join(
          f'{name} {p:.3f}' for name, p in result['predictions']))
  return int(any('error' in result for result in results))
