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
are cached under WORKDIR, so a rerun only fits the SVMs.

The last row is the same protocol on a fine-tuned backbone, for comparison
with fine-tuning (which the paper does not do for these sets): the backbone
fine-tuned (`--config.init_from`, every layer learning, a new fc8) on the
set's own training images, as single-label crops of their non-difficult
objects (R-CNN's way of fine-tuning on VOC: each box with 16 pixels of
context, labelled with its class; validation: the 'val' split's crops), then
SVMs on its features of the whole images as above.
"""

import os
import runpy
import time

import cv2
import numpy as np
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
flags.DEFINE_integer('finetune_epochs', 8, 'Epochs of fine-tuning on the '
                     'object crops (0: no fine-tuned row).')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS

LAYERS = ('spp6', 'fc6', 'fc7')
# The figures the paper's text states (ZF-5 SPP-net, %), by row: VOC 2007
# mAP (fc7) and Caltech101 accuracy (its text does not name the layer);
# the other cells are in its Tables 6 and 7.
PAPER = {'crop': 'VOC fc7 76.45', 'warp': 'Caltech 89.91',
         'full': 'VOC fc7 78.39; Caltech 91.44',
         'full large': 'VOC: s = 392 best', 'fine-tuned': '(not in the paper)'}


CONTEXT = 16  # pixels around each cropped box (R-CNN's context padding)


def write_object_crops(config, split: str, out_dir: str) -> int:
  """Each non-difficult object of `split` cut out with CONTEXT pixels around
  it (clipped to the image) as out_dir/<class>/<image>_<k>.png; returns the
  count."""
  from sppnet_jax.transfer import data  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.data import sources as det_sources  # pylint: disable=g-import-not-at-top
  source = data.detection_source(config, (split,))
  count = 0
  for example in det_sources.decoded_examples(source, split):
    height, width = example.image.shape[:2]
    for k, (box, label, difficult) in enumerate(zip(
        example.boxes, example.labels, example.difficult)):
      if difficult:
        continue
      y0, x0 = (max(int(v) - CONTEXT, 0) for v in box[:2])
      y1 = min(int(np.ceil(box[2])) + CONTEXT, height)
      x1 = min(int(np.ceil(box[3])) + CONTEXT, width)
      folder = os.path.join(out_dir, source.class_names[label])
      os.makedirs(folder, exist_ok=True)
      cv2.imwrite(os.path.join(folder, f'{example.image_id}_{k}.png'),
                  cv2.cvtColor(example.image[y0:y1, x0:x1], cv2.COLOR_RGB2BGR))
      count += 1
  return count


def fine_tuned(config, backbone, workdir: str) -> str:
  """The workdir of the backbone fine-tuned on the object crops of the
  training split (module docstring), trained when missing."""
  from sppnet_jax.classification import train  # pylint: disable=g-import-not-at-top
  out = os.path.join(workdir, 'fine_tuned')
  crops = os.path.join(workdir, 'object_crops')
  if not os.path.isdir(os.path.join(crops, 'val')):
    for split, folder in ((config.train_split, 'train'), ('val', 'val')):
      count = write_object_crops(config, split, os.path.join(crops, folder + '.tmp'))
      os.replace(os.path.join(crops, folder + '.tmp'), os.path.join(crops, folder))
      print(f'# {count} object crops of {split} in {crops}/{folder}', flush=True)
  classification = runpy.run_path(config.backbone_recipe)['get_config']()
  classification.update(dict(
      dataset='imagefolder', data_dir=crops, eval_split='val', num_classes=-1,
      init_from=backbone.path, num_epochs=FLAGS.finetune_epochs))
  metrics = train.train_and_evaluate(classification, out)
  print(f'# fine-tuned on the crops: validation top-1 {100 * metrics["top1"]:.2f}%',
        flush=True)
  return out


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
  rows = [('crop', 'center', size, None), ('warp', 'warp', size, None),
          ('full', 'full', size, None), ('full large', 'full', large, None)]
  if FLAGS.finetune_epochs:
    rows.append(('fine-tuned', 'full', size,
                 fine_tuned(config, backbone, FLAGS.workdir)))
  lines = [f'{"view":<22}' + ''.join(f'{layer:>8}' for layer in LAYERS)
           + '   seconds  paper (ZF-5, %)']
  for label, kind, side, tuned in rows:
    start = time.time()
    net = backbone if tuned is None else backbone_at(tuned, train=False,
                                                      recipe='')
    view = feature_lib.View(kind, side, int(config.full_image_step),
                            bool(net.config.get('resize_antialias', False)))
    cache = (FLAGS.workdir if tuned is None else
             os.path.join(FLAGS.workdir, 'fine_tuned_features'))
    extracted = protocol.extract(config, net, cache, LAYERS, view)
    train, test = extracted[config.train_split], extracted[config.test_split]
    maps = [protocol.score_multilabel(train, test, layer, config)['map']
            for layer in LAYERS]
    name = f'{kind} s={side}' if kind == 'full' else f'{label} {side}'
    if tuned is not None:
      name = f'{name}, fine-tuned'
    lines.append(f'{name:<22}' + ''.join(f'{100 * m:8.2f}' for m in maps)
                 + f'{time.time() - start:10.0f}  {PAPER[label]}')
    print(lines[-1], flush=True)
  print(f'\nTest mAP (%) of SVMs on {config.dataset} ({config.train_split} '
        f'-> {config.test_split}), backbone {backbone.path}:')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
