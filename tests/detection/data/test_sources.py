"""Detection sources: COCO folders (hand-made here), one reading path, shards,
bad input. (TFDS VOC: test_voc_source.py; the embedded set:
test_embedded_data.py.)"""

import collections
import json
import os

import numpy as np
from PIL import Image
import pytest

from sppnet_jax.core.data import corrupt
from sppnet_jax.detection.data import sources as data
from sppnet_jax.errors import DataError


def _write_image(path, height, width, seed):
  pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3),
                                                np.uint8)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path)  # PNG: lossless, exact pixels
  return pixels


def _coco_split(directory, images, annotations, categories):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, data.ANNOTATIONS_FILE), 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': categories}, f)


CATEGORIES = [{'id': 7, 'name': 'star'}, {'id': 2, 'name': 'circle'},
              {'id': 40, 'name': 'ring'}]  # labels: circle 0, star 1, ring 2


@pytest.fixture
def coco_root(tmp_path):
  """A train split of 4 images (one corrupt, one without objects) and a test
  split of 7 images."""
  root = tmp_path / 'coco'
  pixels = {}
  for iid, (h, w) in {10: (30, 40), 3: (25, 20), 8: (16, 16)}.items():
    pixels[iid] = _write_image(str(root / 'train' / 'images' / f'{iid}.png'),
                               h, w, iid)
  os.makedirs(root / 'train' / 'broken', exist_ok=True)
  (root / 'train' / 'broken' / 'x.jpg').write_bytes(b'not an image')
  images = [
      {'id': 10, 'file_name': 'images/10.png', 'height': 30, 'width': 40},
      {'id': 3, 'file_name': 'images/3.png', 'height': 25, 'width': 20},
      {'id': 5, 'file_name': 'broken/x.jpg', 'height': 9, 'width': 9},
      {'id': 8, 'file_name': 'images/8.png', 'height': 16, 'width': 16},
  ]
  annotations = [
      # image 10: a plain box, a box past the right/bottom edges (clipped),
      # a crowd region (difficult), a zero-width box (dropped).
      {'id': 1, 'image_id': 10, 'category_id': 7, 'bbox': [1.5, 2, 10, 20]},
      {'id': 2, 'image_id': 10, 'category_id': 40, 'bbox': [30, 25, 20, 9],
       'iscrowd': 0},
      {'id': 3, 'image_id': 10, 'category_id': 2, 'bbox': [0, 0, 40, 30],
       'iscrowd': 1},
      {'id': 4, 'image_id': 10, 'category_id': 2, 'bbox': [5, 5, 0, 7]},
      # image 3: a VOC-style difficult flag, a box wholly outside (dropped).
      {'id': 5, 'image_id': 3, 'category_id': 2, 'bbox': [4, 6, 3, 2],
       'difficult': 1},
      {'id': 6, 'image_id': 3, 'category_id': 40, 'bbox': [21, 0, 5, 5]},
      {'id': 7, 'image_id': 5, 'category_id': 2, 'bbox': [0, 0, 2, 2]},
  ]
  _coco_split(str(root / 'train'), images, annotations, CATEGORIES)
  test_images = []
  for iid in range(1, 8):
    _write_image(str(root / 'test' / f'{iid}.png'), 8, 8 + iid, 100 + iid)
    test_images.append({'id': iid, 'file_name': f'{iid}.png', 'height': 8,
                        'width': 8 + iid})
  _coco_split(str(root / 'test'), test_images,
              [{'id': 1, 'image_id': 4, 'category_id': 40, 'bbox': [1, 1, 2, 3]}],
              CATEGORIES)
  return str(root), pixels


def test_coco_folder_examples_are_exact(coco_root):
  root, pixels = coco_root
  source = data.CocoFolderSource(root, ['train', 'test'])
  assert source.class_names == ('circle', 'star', 'ring')
  assert source.category_ids == (2, 7, 40)
  corrupt.reset_skipped_images()
  stats = collections.Counter()
  examples = list(data.decoded_examples(source, 'train', stats=stats))
  # Ascending image id; the unreadable image 5 is skipped and counted.
  assert [e.image_id for e in examples] == ['3', '8', '10']
  assert corrupt.num_skipped_images('train') == 1
  assert stats == {'images': 3, 'dropped_boxes': 2}
  by_id = {e.image_id: e for e in examples}
  for iid in (3, 8, 10):
    np.testing.assert_array_equal(by_id[str(iid)].image, pixels[iid])
  ten = by_id['10']
  # (y0, x0, y1, x1): [x, y, w, h] = [1.5, 2, 10, 20] -> (2, 1.5, 22, 11.5);
  # [30, 25, 20, 9] -> (25, 30, 34, 50) clipped to the 30 x 40 image.
  np.testing.assert_array_equal(
      ten.boxes, [[2, 1.5, 22, 11.5], [25, 30, 30, 40], [0, 0, 30, 40]])
  np.testing.assert_array_equal(ten.labels, [1, 2, 0])
  np.testing.assert_array_equal(ten.difficult, [False, False, True])
  three = by_id['3']
  np.testing.assert_array_equal(three.boxes, [[6, 4, 8, 7]])
  np.testing.assert_array_equal(three.labels, [0])
  np.testing.assert_array_equal(three.difficult, [True])
  eight = by_id['8']  # no objects: an example with no boxes
  assert eight.boxes.shape == (0, 4) and eight.labels.shape == (0,)
  assert eight.difficult.shape == (0,)


@pytest.mark.parametrize('count', [2, 3, 7])
def test_coco_shards_are_disjoint_and_cover_the_split(coco_root, count):
  root, _ = coco_root
  source = data.CocoFolderSource(root, ['test'])
  parts = [[e.image_id for e in data.decoded_examples(
      source, 'test', process_index=p, process_count=count)]
           for p in range(count)]
  flat = [i for part in parts for i in part]
  assert sorted(flat, key=int) == [str(i) for i in range(1, 8)]
  assert len(flat) == len(set(flat)) == 7
  assert [len(p) for p in parts] == [(p + 1) * 7 // count - p * 7 // count
                                     for p in range(count)]
  # Image 4's one box, on whichever process reads it.
  [four] = [e for p in range(count) for e in data.decoded_examples(
      source, 'test', process_index=p, process_count=count)
            if e.image_id == '4']
  np.testing.assert_array_equal(four.boxes, [[1, 1, 4, 3]])


def _error(tmp_path, images, annotations, categories=CATEGORIES):
  _coco_split(str(tmp_path / 'train'), images, annotations, categories)
  with pytest.raises(DataError) as e:
    data.CocoFolderSource(str(tmp_path), ['train'])
  message = str(e.value)
  assert '\n' not in message
  return message


def test_coco_bad_input_is_a_one_line_error(tmp_path):
  image = [{'id': 1, 'file_name': 'a.png', 'height': 4, 'width': 4}]
  path = os.path.join(str(tmp_path), 'train', data.ANNOTATIONS_FILE)
  assert _error(tmp_path, image, [{'id': 9, 'image_id': 1, 'category_id': 3,
                                   'bbox': [0, 0, 1, 1]}]) == (
      f'{path}: annotation 9 has category_id 3, which is not in its '
      'categories; add the category or drop the annotation.')
  assert _error(tmp_path, image, [{'id': 9, 'image_id': 2, 'category_id': 2,
                                   'bbox': [0, 0, 1, 1]}]) == (
      f'{path}: annotation 9 refers to image_id 2, which is not in its '
      'images; fix the file.')
  assert 'a COCO bbox is 4 finite numbers' in _error(
      tmp_path, image, [{'id': 9, 'image_id': 1, 'category_id': 2,
                         'bbox': [0, 0, 1]}])
  assert 'a COCO bbox is 4 finite numbers' in _error(
      tmp_path, image, [{'id': 9, 'image_id': 1, 'category_id': 2,
                         'bbox': [0, float('nan'), 1, 1]}])
  assert 'lacks a valid image_id/category_id/bbox' in _error(
      tmp_path, image, [{'id': 9, 'image_id': 1, 'bbox': [0, 0, 1, 1]}])
  assert 'image ids repeat' in _error(tmp_path, image * 2, [])
  assert 'category ids repeat' in _error(tmp_path, image, [],
                                         CATEGORIES + CATEGORIES[:1])
  (tmp_path / 'train' / data.ANNOTATIONS_FILE).write_text('{"images": [')
  with pytest.raises(DataError, match='must be a COCO-format json file'):
    data.CocoFolderSource(str(tmp_path), ['train'])


def test_missing_folders_and_splits(tmp_path):
  with pytest.raises(DataError, match='does not exist: point --config.data_dir'):
    data.CocoFolderSource(str(tmp_path / 'nowhere'), ['train'])
  with pytest.raises(DataError, match=f'No {data.ANNOTATIONS_FILE} in '):
    data.CocoFolderSource(str(tmp_path), ['train'])
  _coco_split(str(tmp_path / 'train'), [], [], CATEGORIES)
  _coco_split(str(tmp_path / 'test'), [], [], CATEGORIES[:2])
  with pytest.raises(DataError, match='list different categories'):
    data.CocoFolderSource(str(tmp_path), ['train', 'test'])
  source = data.CocoFolderSource(str(tmp_path), ['train'])
  with pytest.raises(DataError, match="Split 'test' was not opened"):
    source.num_examples('test')


def test_embedded_set_reads_through_the_coco_source(tmp_path):
  from sppnet_jax.detection.data import embedded as embedded_data  # pylint: disable=g-import-not-at-top
  root = embedded_data.ensure_embedded_detection_dataset(
      str(tmp_path / 'embedded'), num_train=10, num_val=3, num_test=5,
      num_workers=0)
  source = data.CocoFolderSource(root, ['train', 'val', 'test'])
  for split, count in (('train', 10), ('val', 3), ('test', 5)):
    with open(os.path.join(root, split, data.ANNOTATIONS_FILE)) as f:
      coco = json.load(f)
    ids = sorted(c['id'] for c in coco['categories'])
    assert ids != list(range(len(ids)))  # not contiguous: the mapping matters
    names = {c['id']: c['name'] for c in coco['categories']}
    assert source.class_names == tuple(names[i] for i in ids)
    examples = list(data.decoded_examples(source, split))
    assert [e.image_id for e in examples] == [
        str(i) for i in sorted(im['id'] for im in coco['images'])]
    assert len(examples) == count
    sizes = {str(im['id']): (im['height'], im['width']) for im in coco['images']}
    for e in examples:
      assert e.image.shape == sizes[e.image_id] + (3,)
      rows = [a for a in coco['annotations'] if str(a['image_id']) == e.image_id]
      expected = [[a['bbox'][1], a['bbox'][0], a['bbox'][1] + a['bbox'][3],
                   a['bbox'][0] + a['bbox'][2]] for a in rows]
      np.testing.assert_array_equal(e.boxes, np.reshape(expected, (-1, 4)))
      np.testing.assert_array_equal(
          e.labels, [ids.index(a['category_id']) for a in rows])
      np.testing.assert_array_equal(e.difficult,
                                    [bool(a['difficult']) for a in rows])
