"""The per-class results table of a detection evaluation: text for the log,
JSON for tools, scalars for TensorBoard (through a clu metric writer).

Inputs are `evaluation.voc_map`'s result and optionally `evaluation.coco_ap`'s.
A class with no non-difficult box has no AP: 'n/a' in the text, null in the
JSON, left out of TensorBoard (and out of the mAP, as `voc_map` does).
"""

import json
import math
from typing import Mapping

from sppnet_jax.detection import stage_files


def _percent(value) -> str:
  return 'n/a' if value is None or math.isnan(value) else f'{100 * value:.1f}'


def format_table(voc: Mapping, coco: Mapping | None = None) -> str:
  """A fixed-width table: one row per class (AP %), then the mAP and, given
  `coco`, COCO's AP@[.50:.95] / AP50 / AP75 (%)."""
  names = [str(name) for name in voc['ap']]
  width = max([len(n) for n in names] + [len('class')])
  lines = [f'{"class":<{width}}  AP (%)']
  lines += [f'{name:<{width}}  {_percent(ap):>6}'
            for name, ap in zip(names, voc['ap'].values())]
  lines.append(f'{"mAP":<{width}}  {_percent(voc["map"]):>6}')
  if coco is not None:
    lines.append(f'COCO AP@[.50:.95] {_percent(coco["ap"])}, AP50 '
                 f'{_percent(coco["ap50"])}, AP75 {_percent(coco["ap75"])}')
  return '\n'.join(lines)


def _finite_or_none(value):
  value = float(value)
  return None if math.isnan(value) else value


def as_json(voc: Mapping, coco: Mapping | None = None) -> dict:
  """A JSON-ready dict: {'map', 'ap': {class: AP or None},
  'classes_without_boxes', and 'coco' when given}."""
  out = {'map': _finite_or_none(voc['map']),
         'ap': {str(k): _finite_or_none(v) for k, v in voc['ap'].items()},
         'classes_without_boxes': [str(n) for n in voc['classes_without_boxes']]}
  if coco is not None:
    out['coco'] = {k: float(v) for k, v in coco.items()}
  return out


def write(path: str, writer, step: int, voc: Mapping,
          coco: Mapping | None = None, prefix: str = 'test') -> None:
  """Writes the JSON to `path` (atomically) and the scalars `{prefix}_map`,
  `{prefix}_ap/<class>` and `{prefix}_coco_<key>` at `step` to `writer`."""
  record = as_json(voc, coco)
  text = json.dumps(record, indent=1).encode('utf-8')
  stage_files.write_atomically(path, lambda f: f.write(text))
  scalars = {f'{prefix}_ap/{name}': ap for name, ap in record['ap'].items()
             if ap is not None}
  if record['map'] is not None:
    scalars[f'{prefix}_map'] = record['map']
  for key, value in record.get('coco', {}).items():
    scalars[f'{prefix}_coco_{key}'] = value
  writer.write_scalars(step, scalars)
