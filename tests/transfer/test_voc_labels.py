"""TFDS voc/2007 (the genuine builder on the fake archives of
`voc_fixture`) read as a multi-label set: every image's per-class ground
truth equals the devkit's ImageSets/Main/<class>_<split>.txt lists that the
fixture writes (1 / 0 difficult only / -1)."""

import ml_collections

from sppnet_jax.transfer import data
from tests.detection import voc_fixture


def _devkit_lists(split):
  """{image_id: [flag per class]} from the fixture's per-class lists."""
  lists = voc_fixture._class_list(voc_fixture._IMAGES[split])  # pylint: disable=protected-access
  flags = {}
  for name in voc_fixture.CLASSES:
    for line in lists[name].decode().splitlines():
      image_id, flag = line.split()
      flags.setdefault(image_id, []).append(int(flag))
  return flags


def test_labels_are_the_devkits(tmp_path):
  voc_fixture.write_voc_archives(str(tmp_path / 'manual'))
  voc_fixture.prepare_voc2007(str(tmp_path / 'tfds'), str(tmp_path / 'manual'))
  config = ml_collections.ConfigDict(dict(
      dataset='voc/2007', data_dir=str(tmp_path / 'tfds'),
      manual_dir=str(tmp_path / 'manual'), train_split='train+validation',
      test_split='test'))
  train, test = data.multilabel_splits(config)
  assert train.class_names == voc_fixture.CLASSES
  expected = {**_devkit_lists('train'), **_devkit_lists('validation')}
  seen = {item.key: item.label.tolist() for item in train.images}
  assert seen == expected and train.total == len(expected)
  seen = {item.key: item.label.tolist() for item in test.images}
  assert seen == _devkit_lists('test')
  assert any(0 in flags for flags in seen.values())  # a difficult-only case
