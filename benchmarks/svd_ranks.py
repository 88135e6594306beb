"""Low-rank fc6 and fc7 against the whole head, on a trained detection
workdir: for each rank pair (given for a full-width head, scaled with the
workdir's fc_dim as `--config.test.svd_ranks` scales them) and each method
(`--config.test.svd_method`: 'responses', fitted to sampled regions of
training images, and 'weights', Fast R-CNN's SVD of the kernels), the test
split's VOC07 mAP and COCO AP, the fc6-fc8 multiply-accumulates per region
and the milliseconds per image of scoring the split (the pipeline: on the
cached maps, pooling, fc6-fc8, scores, NMS, box regression; end to end, the
same after conv5 of the image by its own conv layers, as --mode=eval), so a
user can pick ranks. Either training method's workdir:

  python main.py --config=configs/detection/tiny.py --workdir=runs/detection
  python benchmarks/svd_ranks.py --config=configs/detection/tiny.py \\
      --workdir=runs/detection
  python main.py --config=configs/detection/tiny_end_to_end.py \\
      --workdir=runs/detection_e2e
  python benchmarks/svd_ranks.py \\
      --config=configs/detection/tiny_end_to_end.py --workdir=runs/detection_e2e

The factors are computed once per rank pair and kept in WORKDIR/detector/
(as eval does), so a rerun only scores.
"""

import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from sppnet_jax import runtime
from sppnet_jax.detection import pipeline
from sppnet_jax.detection.inference import svd

# The recipes import each other as `configs.detection...`: the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

config_flags.DEFINE_config_file('config', 'configs/detection/tiny.py',
                                'The detection recipe the workdir was '
                                'trained with.', lock_config=True)
flags.DEFINE_string('workdir', None, 'A trained detection workdir.')
flags.DEFINE_string('ranks', '0;2048,512;1024,256;512,128;256,64',
                    'Semicolon-separated fc6,fc7 rank pairs for a full-width '
                    'head; 0: the whole head.')
flags.DEFINE_list('methods', ['responses', 'weights'],
                  'The SVD methods to compare (config.test.svd_method).')
flags.DEFINE_integer('repeats', 1, 'Scoring passes per row (the fastest is '
                     'reported).')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.prefer_fast_cpu_convolutions()
  runtime.start_jax()
  config, workdir = FLAGS.config, FLAGS.workdir
  run = pipeline.open_run(config, workdir)
  model = run.backbone.model
  fc_in = model.pool5_dim()
  rows = []
  for text in FLAGS.ranks.split(';'):
    wanted = () if text.strip() == '0' else tuple(
        int(r) for r in text.split(','))
    for method in FLAGS.methods if wanted else ['']:
      with config.unlocked():
        config.test.svd_ranks = wanted
        config.test.svd_method = method or config.test.svd_method
      detector, _, conv5 = pipeline.load_trained(run)
      seconds = []
      for _ in range(max(1, FLAGS.repeats)):
        start = time.perf_counter()
        score = pipeline.score(run, detector, config.eval_split, conv5)
        seconds.append(time.perf_counter() - start)
      ranks = svd.scaled_ranks(wanted, model.fc_dim)
      rows.append((text, method, ranks, score,
                   min(seconds) / score.num_images,
                   svd.head_macs(fc_in, model.fc_dim, model.num_classes,
                                 ranks)))
  print(f'\n{run.num_classes}-class test split, {rows[0][3].num_images} '
        f'images; head: pool5 {fc_in} -> fc6 {model.fc_dim} -> fc7 '
        f'{model.fc_dim}; ' + ('end to end (softmax, own deltas)'
                               if pipeline.is_end_to_end(config) else
                               f'classifier {config.detection.classifier}')
        + '\n')
  print('| svd_ranks (full width) | ranks here | method | test mAP (%) | '
        'COCO AP (%) | fc MACs per region | ms per image |')
  print('|---|---|---|---:|---:|---:|---:|')
  for text, method, ranks, score, per_image, macs in rows:
    print(f'| {"whole" if not ranks else text} | '
          f'{", ".join(map(str, ranks)) or "whole"} | {method or "-"} | '
          f'{100 * score.voc["map"]:.2f} | {100 * score.coco["ap"]:.2f} | '
          f'{macs:,} | {1e3 * per_image:.1f} |')

if __name__ == '__main__':
  app.run(main)
