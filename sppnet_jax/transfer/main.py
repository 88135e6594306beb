"""--mode=transfer: a classification SPP-net's features, one linear SVM per
class, the scores (the paper's sections 3.2-3.3).

`run(config, workdir)` checks the config, restores the backbone (training it
first when the recipe allows it and there is none), extracts the features,
fits and scores the SVMs, prints a table and writes WORKDIR/transfer/
results.json and TensorBoard scalars in WORKDIR/transfer/. It runs in one
process, on one device (the features' batches are small; the SVMs run on the
host).
"""

from __future__ import annotations

import json
import os
import time

from absl import logging

from sppnet_jax.transfer import config as config_lib
from sppnet_jax.transfer import protocol
from sppnet_jax.core import metric_output
from sppnet_jax.errors import ConfigError


def _percent(value) -> str:
  return 'n/a' if value != value else f'{100 * value:.2f}'  # NaN: n/a


def format_multilabel(result: dict) -> str:
  """Per-class AP (%) and the mAP, one class a line."""
  names = list(result['ap'])
  width = max([len(n) for n in names] + [len('class')])
  lines = [f'{"class":<{width}}  AP (%)      C']
  lines += [f'{n:<{width}}  {_percent(result["ap"][n]):>6}  {result["c"][n]:>5g}'
            for n in names]
  lines.append(f'{"mAP":<{width}}  {_percent(result["map"]):>6}')
  return '\n'.join(lines)


def format_multiclass(result: dict) -> str:
  return (f'mean per-class accuracy {_percent(result["accuracy"])}% +- '
          f'{_percent(result["std"])} over {len(result["split_accuracies"])} '
          'splits')


def _json_ready(value):
  if isinstance(value, float) and value != value:
    return None
  if isinstance(value, dict):
    return {str(k): _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  return value


def run(config, workdir: str) -> dict:
  """The whole transfer run (module docstring); returns the results."""
  config_lib.validate_config(config)
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() > 1:
    raise ConfigError('--mode=transfer runs in one process: start it without '
                      '--num_processes / a multi-process launcher.')
  from sppnet_jax.detection.backbone import backbone_at  # pylint: disable=g-import-not-at-top
  start = time.time()
  backbone = backbone_at(config.backbone, train=bool(config.train_backbone),
                         recipe=config.backbone_recipe,
                         field='config.backbone_recipe')
  view = protocol.view_of(config, backbone)
  extracted = protocol.extract(config, backbone, workdir, (config.layer,),
                               view)
  multilabel = config.dataset in config_lib.MULTILABEL_DATASETS
  if multilabel:
    train, test = (extracted[config.train_split],
                   extracted[config.test_split])
    result = protocol.score_multilabel(train, test, config.layer, config)
    table = format_multilabel(result)
    counts = {'train_images': len(train.keys), 'test_images': len(test.keys),
              'skipped_images': train.skipped + test.skipped}
  else:
    images = extracted['all']
    result = protocol.score_multiclass(images, config.layer, config)
    table = format_multiclass(result)
    counts = {'images': len(images.keys), 'skipped_images': images.skipped}
  seconds = time.time() - start
  header = (f'Transfer: {config.dataset}, layer {config.layer}, view '
            f'{view.kind} {view.size}, backbone {backbone.path} (step '
            f'{backbone.step}); {", ".join(f"{k} {v}" for k, v in counts.items())}')
  print(header + '\n' + table, flush=True)
  out_dir = os.path.join(workdir, 'transfer')
  os.makedirs(out_dir, exist_ok=True)
  record = _json_ready({**result, **counts, 'layer': config.layer,
                        'view': view.kind, 'size': view.size,
                        'dataset': config.dataset, 'backbone': backbone.path,
                        'backbone_step': backbone.step,
                        'seconds': round(seconds, 1)})
  path = os.path.join(out_dir, 'results.json')
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    json.dump(record, f, indent=1)
  os.replace(path + '.tmp', path)
  writer = metric_output.open_writer(out_dir)
  if multilabel:
    scalars = {f'test_ap/{k}': v for k, v in record['ap'].items()
               if v is not None}
    if record['map'] is not None:
      scalars['test_map'] = record['map']
  else:
    scalars = {'test_mean_class_accuracy': record['accuracy'],
               'test_mean_class_accuracy_std': record['std']}
  writer.write_scalars(0, scalars)
  writer.close()
  logging.info('Transfer results in %s (%.0f s).', path, seconds)
  return record
