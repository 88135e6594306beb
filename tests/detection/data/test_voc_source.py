"""TFDS voc/2007 through the project's source: the fake archives of
`voc_fixture`, prepared offline by the genuine builder (`prepare_voc`), read
back with the exact boxes of the XMLs, per split and per process."""

import numpy as np
import pytest

from sppnet_jax.core.data import corrupt
from sppnet_jax.detection.data import prepare_voc, sources as data
from sppnet_jax.errors import DataError
from tests.detection import voc_fixture


@pytest.fixture(scope='module')
def voc(tmp_path_factory):
  root = tmp_path_factory.mktemp('voc')
  manual_dir, data_dir = str(root / 'manual'), str(root / 'tfds')
  expected = voc_fixture.write_voc_archives(manual_dir)
  voc_fixture.prepare_voc2007(data_dir, manual_dir)
  return data_dir, expected


def _expected_example(record):
  """The library's (y0, x0, y1, x1) of the XML's 1-based inclusive box, by
  hand: y0 = ymin - 1, y1 = ymax."""
  objects = record['objects']
  boxes = np.array([[o['ymin'] - 1, o['xmin'] - 1, o['ymax'], o['xmax']]
                    for o in objects], np.float32).reshape(-1, 4)
  labels = np.array([voc_fixture.CLASSES.index(o['name']) for o in objects],
                    np.int32)
  difficult = np.array([o['difficult'] for o in objects], bool)
  return boxes, labels, difficult


def _read(source, split, **shard):
  return list(data.decoded_examples(source, split, **shard))


def test_every_split_reads_the_xml_boxes_exactly(voc):
  data_dir, expected = voc
  source = data.TfdsVocSource('voc/2007', data_dir=data_dir)
  assert source.class_names == voc_fixture.CLASSES
  corrupt.reset_skipped_images()
  for split in voc_fixture.SPLITS:
    records = {r['image_id']: r for r in expected[split]}
    examples = _read(source, split)
    assert sorted(e.image_id for e in examples) == sorted(records)
    assert source.num_examples(split) == len(records)
    for e in examples:
      record = records[e.image_id]
      np.testing.assert_array_equal(e.image, record['pixels'])
      boxes, labels, difficult = _expected_example(record)
      np.testing.assert_array_equal(e.boxes, boxes)
      np.testing.assert_array_equal(e.labels, labels)
      np.testing.assert_array_equal(e.difficult, difficult)
  assert corrupt.num_skipped_images() == 0
  # The fixture has an image without objects, a 1-pixel-wide box and a box on
  # the border: they all came through.
  every = [e for split in voc_fixture.SPLITS for e in _read(source, split)]
  assert any(len(e.boxes) == 0 for e in every)
  assert any(np.any(e.boxes[:, 3] - e.boxes[:, 1] == 1) for e in every)
  assert any(np.any(e.boxes[:, 0] == 0) for e in every)


@pytest.mark.parametrize('split,count', [('test', 2), ('test', 3),
                                         ('train+validation', 3)])
def test_shards_are_disjoint_and_cover_the_split(voc, split, count):
  data_dir, expected = voc
  source = data.TfdsVocSource('voc/2007', data_dir=data_dir)
  parts = [[e.image_id for e in _read(source, split, process_index=p,
                                      process_count=count)]
           for p in range(count)]
  flat = [i for part in parts for i in part]
  names = ('train', 'validation') if '+' in split else (split,)
  assert sorted(flat) == sorted(r['image_id'] for n in names
                                for r in expected[n])
  assert len(set(flat)) == len(flat)
  # Even parts of each split ('train+validation': tfds.even_splits cuts
  # each one), so at most one image of difference per split.
  assert max(map(len, parts)) - min(map(len, parts)) <= len(names)


def test_not_prepared_and_missing_archives_say_what_to_do(tmp_path):
  with pytest.raises(DataError) as e:
    data.TfdsVocSource('voc/2007', data_dir=str(tmp_path / 'tfds'),
                       manual_dir=str(tmp_path / 'archives'))
  assert str(e.value) == (
      f"TFDS data set 'voc/2007' is not prepared in {tmp_path / 'tfds'}: put "
      'VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar in '
      f'{tmp_path / "archives"} and run: python -m '
      f'sppnet_jax.detection.data.prepare_voc --data_dir={tmp_path / "tfds"} '
      f'--manual_dir={tmp_path / "archives"} (or point --config.data_dir at a '
      'prepared TFDS folder).')
  with pytest.raises(DataError) as e:
    prepare_voc.prepare('voc/2007', str(tmp_path / 'tfds'), str(tmp_path))
  assert str(e.value) == (
      'VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar not found in '
      f'{tmp_path}: put the official archives of voc/2007 there under these '
      'names.')
