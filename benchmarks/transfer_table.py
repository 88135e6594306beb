"""The paper's Tables 6 and 7 in shape, on the embedded detection set read as
a multi-label set: test mAP (VOC classification AP) of linear SVMs on the
backbone's spp6 / fc6 / fc7 features, for the center crop, the warped image
and the full image at two short sides, with the paper's VOC 2007 and
Caltech101 figures beside where the paper states them in its text.

  python benchmarks/transfer_table.py --workdir=runs/transfer_table

The backbone, data and SVM settings are configs/transfer/tiny_voc.py's (its
fields can be overridden, --config.backbone=...); the recipe's `size` is the
crop, warp and first full-image side, `--large` the second full-image side
(the paper's 224 and 392, halved here as the backbone's input is). Features
are cached in WORKDIR/features/, so a rerun only fits the SVMs.
"""

import time

from absl import app, flags
from ml_collections import config_flags

from sppnet_jax import runtime
from sppnet_jax.transfer import config as config_lib
from sppnet_jax.transfer import features as feature_lib
from sppnet_jax.transfer import protocol

config_flags.DEFINE_config_file('config', 'configs/transfer/tiny_voc.py',
                                'A multi-label transfer recipe.',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Where the features are cached.')
flags.DEFINE_integer('large', 196, 'The second full-image short side.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS

LAYERS = ('spp6', 'fc6', 'fc7')
# The figures the paper's text states (ZF-5 SPP-net, %), by row: VOC 2007
# mAP (fc7) and Caltech101 accuracy (its text does not name the layer);
# the other cells are in its Tables 6 and 7.
PAPER = {'crop': 'VOC fc7 76.45', 'warp': 'Caltech 89.91',
         'full': 'VOC fc7 78.39; Caltech 91.44',
         'full large': 'VOC: s = 392 best'}


def main(argv):
  del argv
  runtime.prefer_fast_cpu_convolutions()
  runtime.start_jax()
  config = FLAGS.config
  config_lib.validate_config(config)
  if config.dataset not in config_lib.MULTILABEL_DATASETS:
    raise app.UsageError('the table needs a multi-label recipe (VOC AP)')
  from sppnet_jax.detection.backbone import backbone_at  # pylint: disable=g-import-not-at-top
  backbone = backbone_at(config.backbone, train=bool(config.train_backbone),
                         recipe=config.backbone_recipe)
  size, large = int(config.size), int(FLAGS.large)
  rows = (('crop', 'center', size), ('warp', 'warp', size),
          ('full', 'full', size), ('full large', 'full', large))
  lines = [f'{"view":<16}' + ''.join(f'{layer:>8}' for layer in LAYERS)
           + '   seconds  paper (ZF-5, %)']
  for label, kind, side in rows:
    start = time.time()
    view = feature_lib.View(kind, side, int(config.full_image_step),
                            bool(backbone.config.get('resize_antialias',
                                                     False)))
    extracted = protocol.extract(config, backbone, FLAGS.workdir, LAYERS,
                                 view)
    train, test = extracted[config.train_split], extracted[config.test_split]
    maps = [protocol.score_multilabel(train, test, layer, config)['map']
            for layer in LAYERS]
    name = f'{kind} s={side}' if kind == 'full' else f'{label} {side}'
    lines.append(f'{name:<16}' + ''.join(f'{100 * m:8.2f}' for m in maps)
                 + f'{time.time() - start:10.0f}  {PAPER[label]}')
    print(lines[-1], flush=True)
  print(f'\nTest mAP (%) of SVMs on {config.dataset} ({config.train_split} '
        f'-> {config.test_split}), backbone {backbone.path}:')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
