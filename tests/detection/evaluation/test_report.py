"""The per-class table: text, JSON and TensorBoard scalars of one evaluation."""

import json
import math

from sppnet_jax.detection.evaluation import report

VOC = {'map': 0.5, 'ap': {'cat': 0.25, 'dog': 0.75, 'cow': math.nan},
       'classes_without_boxes': ['cow']}
COCO = {'ap': 0.125, 'ap50': 0.5, 'ap75': 0.0625}


def test_text_table():
  assert report.format_table(VOC, COCO) == '\n'.join([
      'class  AP (%)',
      'cat      25.0',
      'dog      75.0',
      'cow       n/a',
      'mAP      50.0',
      'COCO AP@[.50:.95] 12.5, AP50 50.0, AP75 6.2'])
  assert report.format_table(VOC).splitlines()[-1] == 'mAP      50.0'


class _Writer:
  def __init__(self):
    self.calls = []

  def write_scalars(self, step, scalars):
    self.calls.append((step, dict(scalars)))


def test_json_and_scalars(tmp_path):
  writer = _Writer()
  path = str(tmp_path / 'detection.json')
  report.write(path, writer, 7, VOC, COCO)
  with open(path) as f:
    assert json.load(f) == {
        'map': 0.5, 'ap': {'cat': 0.25, 'dog': 0.75, 'cow': None},
        'classes_without_boxes': ['cow'],
        'coco': {'ap': 0.125, 'ap50': 0.5, 'ap75': 0.0625}}
  assert writer.calls == [(7, {
      'test_ap/cat': 0.25, 'test_ap/dog': 0.75, 'test_map': 0.5,
      'test_coco_ap': 0.125, 'test_coco_ap50': 0.5, 'test_coco_ap75': 0.0625})]
