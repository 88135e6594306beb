"""Fast R-CNN's ablations (its Tables 5 and 6) on the embedded detection set,
beside the SPP-net pipeline's rows, all on one backbone, one set of
proposals and one machine:

  python benchmarks/end_to_end_ablation.py --root=runs/ablation

Rows (each a workdir under ROOT; the proposals are shared in ROOT/proposals,
the backbone is the recipes' runs/tiny, trained first when missing):

  pipeline           configs/detection/tiny.py: conv5 cached, fc6-fc8
                     fine-tuned (conv frozen), SVMs on fc7; test without and
                     with its ridge box regression
  e2e fc6+ ... all   configs/detection/tiny_end_to_end.py with
                     end_to_end.train_layers = fc6 | conv3 | conv2 | all
                     (Table 5; multi-task loss, the box deltas at test)
  e2e conv3+, ...    Table 6 on conv3+: classification loss only
                     (box_loss_weight = 0, no deltas at test), multi-task
                     without the deltas at test, multi-task with them

Each row gives the test split's VOC07 mAP and COCO AP, the training wall time
(the pipeline: features + fine-tuning + SVM + bbox stages; end to end: its one
stage; both with their validations) and the test time per image (conv5 of
the image at the test scale, pooling, fc, scores, NMS: `pipeline.score` over
the image source, the second of two passes so compilations are not counted).

A row's figures are kept in ROOT/<row>/ablation_{train,test}.json and a rerun
prints them without training again; a row stopped mid-training resumes (its
training time is then marked as resumed). Run it on a machine doing nothing else: the wall
times are the point. The load average before and after each row is printed.
"""

import json
import os
import runpy
import sys
import time

from absl import app, flags, logging
import jax

from sppnet_jax import runtime
from sppnet_jax.detection import pipeline
from sppnet_jax.detection.config import splits_of
from sppnet_jax.detection.data import sources

flags.DEFINE_string('root', 'runs/ablation', 'Where the rows\' workdirs go.')
flags.DEFINE_string('rows', '', 'Comma-separated row keys to run (default '
                    'all): ' + ', '.join(
                        ('pipeline', 'fc6', 'conv3', 'conv2', 'all',
                         'cls_only')))
flags.DEFINE_integer('end_to_end_steps', 0, 'Steps of the end-to-end rows '
                     '(0: the recipe\'s 1,500; a few for a quick look).')
FLAGS = flags.FLAGS

# The recipes import each other as `configs.detection...`: the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PIPELINE_RECIPE = 'configs/detection/tiny.py'
END_TO_END_RECIPE = 'configs/detection/tiny_end_to_end.py'

# key: (recipe, end_to_end overrides, [(label, box regression at test)])
ROWS = {
    'pipeline': (PIPELINE_RECIPE, {}, [
        ('SPP-net pipeline: fc6+ fine-tuned, SVMs (fc7)', False),
        ('SPP-net pipeline: + box regression', True)]),
    'fc6': (END_TO_END_RECIPE, dict(train_layers='fc6'), [
        ('end to end, fc6+ (multi-task, deltas at test)', True)]),
    'conv3': (END_TO_END_RECIPE, dict(train_layers='conv3'), [
        ('end to end, conv3+ multi-task, no deltas at test', False),
        ('end to end, conv3+ multi-task, deltas at test (default)', True)]),
    'conv2': (END_TO_END_RECIPE, dict(train_layers='conv2'), [
        ('end to end, conv2+ (multi-task, deltas at test)', True)]),
    'all': (END_TO_END_RECIPE, dict(train_layers='all'), [
        ('end to end, conv1+ = all (multi-task, deltas at test)', True)]),
    'cls_only': (END_TO_END_RECIPE, dict(train_layers='conv3',
                                         box_loss_weight=0.0), [
        ('end to end, conv3+ classification loss only', False)]),
}


def row_config(key: str, root: str, num_steps: int):
  recipe, overrides, _ = ROWS[key]
  config = runpy.run_path(recipe)['get_config']()
  config.proposals.dir = os.path.join(root, 'proposals')
  for field, value in overrides.items():
    setattr(config.end_to_end, field, value)
  if num_steps:
    config.end_to_end.num_steps = num_steps
  return config


def _load() -> str:
  return '/'.join(f'{v:.1f}' for v in os.getloadavg())


def train_row(config, workdir: str) -> dict:
  """Runs the row's training stages (each resumes); returns their timing."""
  resumed = os.path.isdir(workdir) and bool(os.listdir(workdir))
  os.makedirs(workdir, exist_ok=True)
  sources.prepare_data(config)
  run = pipeline.open_run(config, workdir)
  pipeline.make_proposals(config, workdir)
  start = time.perf_counter()
  if pipeline.is_end_to_end(config):
    pipeline.run_end_to_end(run)
  else:
    pipeline.make_features(run, splits_of(config))
    pipeline.run_finetuning(run)
    pipeline.train_models(run)
  return dict(train_seconds=time.perf_counter() - start, resumed=resumed)


def test_row(config, workdir: str) -> dict:
  """The test split's score and the warm test time per image."""
  run = pipeline.open_run(config, workdir)
  pipeline.make_proposals(config, workdir, [config.eval_split])
  detector, _, conv5 = pipeline.load_trained(run)
  conv5 = conv5 or pipeline.conv5_of(run)
  seconds = []
  for _ in range(2):
    start = time.perf_counter()
    result = pipeline.score(run, detector, config.eval_split, conv5)
    seconds.append(time.perf_counter() - start)
  return dict(map=result.voc['map'], coco_ap=result.coco['ap'],
              ms_per_image=1000 * seconds[-1] / result.num_images,
              num_images=result.num_images)


def _kept(path: str, compute) -> dict:
  """The JSON at `path`, or `compute()`'s result written there."""
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  figures = compute()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(figures, f, indent=1)
  return figures


def run_row(key: str, root: str, num_steps: int) -> dict:
  workdir = os.path.join(root, key)
  config = row_config(key, root, num_steps)

  def train():
    load_before = _load()
    return dict(train_row(config, workdir), load=f'{load_before} -> {_load()}')

  def test():
    tests = {}
    for label, with_box in ROWS[key][2]:
      config.bbox_regression.enabled = with_box
      tests[label] = test_row(config, workdir)
    return tests

  figures = _kept(os.path.join(workdir, 'ablation_train.json'), train)
  return dict(figures, tests=_kept(
      os.path.join(workdir, 'ablation_test.json'), test))


def main(argv):
  del argv
  runtime.prefer_fast_cpu_convolutions()
  runtime.start_jax()
  keys = [k for k in FLAGS.rows.split(',') if k] or list(ROWS)
  unknown = sorted(set(keys) - set(ROWS))
  if unknown:
    raise app.UsageError(f'--rows: unknown {unknown}; choose from '
                         f'{", ".join(ROWS)}.')
  results = {}
  for key in keys:
    results[key] = run_row(key, FLAGS.root, FLAGS.end_to_end_steps)
    logging.info('Row %s: %s', key, results[key])
  print(f'\nDevice: {jax.devices()[0].device_kind}, {os.cpu_count()} cores.')
  print('| row | test mAP (%) | COCO AP (%) | training wall time | test ms per '
        'image | load average (1/5/15 min) before -> after |')
  print('|---|---:|---:|---:|---:|---|')
  for key in keys:
    figures = results[key]
    minutes, secs = divmod(round(figures['train_seconds']), 60)
    wall = f'{minutes} min {secs:02d} s' + (' (resumed)' if figures['resumed']
                                            else '')
    for label, test in figures['tests'].items():
      print(f'| {label} | {100 * test["map"]:.2f} | {100 * test["coco_ap"]:.2f}'
            f' | {wall} | {test["ms_per_image"]:.1f} | {figures["load"]} |')


if __name__ == '__main__':
  app.run(main)
