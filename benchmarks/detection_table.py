"""The paper's Table 9 for a trained detection workdir: test mAP of SVMs on
pool5, fc6 (the backbone's fc layers, not fine-tuned), fine-tuned fc6,
fine-tuned fc7, and fine-tuned fc7 with box regression, at the workdir's
scales. Run it on a one-scale and a five-scale workdir for the two columns:

  python main.py --config=configs/detection/tiny.py --workdir=runs/detection
  python benchmarks/detection_table.py --config=configs/detection/tiny.py \
      --workdir=runs/detection
  python main.py --config=configs/detection/tiny.py --workdir=runs/detection5 \
      '--config.detection.scales=(240,288,344,432,600)'
  python benchmarks/detection_table.py --config=configs/detection/tiny.py \
      --workdir=runs/detection5 '--config.detection.scales=(240,288,344,432,600)'

Each row's SVMs are trained over the workdir's conv5 cache exactly as the
svm stage trains the final ones (same mining, same settings; only the layer
and the fc weights differ) and kept in WORKDIR/table/, so a rerun only scores.
"""

import os
import time

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

from sppnet_jax import runtime
from sppnet_jax.detection import pipeline
from sppnet_jax.detection.inference.linear_models import (BoxRegressor,
                                                          LinearClassifiers)
from sppnet_jax.detection.training import finetune, svm_training

config_flags.DEFINE_config_file('config', 'configs/detection/tiny.py',
                                'The detection recipe the workdir was '
                                'trained with.', lock_config=True)
flags.DEFINE_string('workdir', None, 'A trained detection workdir.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS

ROWS = (('pool5', 'pool5', False, False), ('fc6', 'fc6', False, False),
        ('ftfc6', 'fc6', True, False), ('ftfc7', 'fc7', True, False),
        ('ftfc7 bb', 'fc7', True, True))


def main(argv):
  del argv
  runtime.prefer_fast_cpu_convolutions()
  runtime.start_jax()
  config, workdir = FLAGS.config, FLAGS.workdir
  run = pipeline.open_run(config, workdir)
  tuned, _ = finetune.final_params(config, workdir, run.backbone,
                                   run.class_names)
  plain = dict(tuned)
  for name in ('fc6', 'fc7'):
    plain[name] = {k: np.asarray(v) for k, v in
                   run.backbone.params[name].items()}
  regressor = BoxRegressor.load(run.model_path('bbox.npz'))
  train = config.train_split
  results = []
  for label, layer, fine_tuned, with_bbox in ROWS:
    params = tuned if fine_tuned else plain
    path = os.path.join(workdir, 'table', f'svm_{layer}_{int(fine_tuned)}.npz')
    start = time.perf_counter()
    if os.path.exists(path):
      svms = LinearClassifiers.load(path)
    else:
      settings = config.svm.copy_and_resolve_references()
      with settings.unlocked():
        settings.layer = layer
      svms = svm_training.train_classifiers(
          pipeline.detector_of(run, params), run.conv5_store(train),
          run.proposal_store(train), settings,
          use_difficult=config.detection.use_difficult,
          num_classes=run.num_classes, seed=config.seed,
          memory_bytes=config.features.memory_mb * 2**20)
      if jax.process_index() == 0:
        svms.save(path)
    detector = pipeline.detector_of(run, params, classifier=svms,
                                    regressor=regressor if with_bbox else None)
    score = pipeline.score(run, detector, config.eval_split)
    results.append((label, score.voc['map'], time.perf_counter() - start))
  scales = ', '.join(str(s) for s in config.detection.scales)
  print(f'\n| features (scales {scales}) | test mAP (%) | seconds |')
  print('|---|---|---|')
  for label, value, seconds in results:
    print(f'| {label} | {100 * value:.1f} | {seconds:.0f} |')


if __name__ == '__main__':
  app.run(main)
