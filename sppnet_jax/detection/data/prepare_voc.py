"""Prepares TFDS PASCAL VOC from the official archives, with no network:

  python -m sppnet_jax.detection.data.prepare_voc --data_dir=D --manual_dir=M

with VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar in M (under these
names). The genuine TFDS builder finds them there by name, checks their size
and sha256 against the registered ones, extracts and prepares `voc/2007` in D.
It is `tfds build voc/2007 --data_dir=D --manual_dir=M` without that CLI's
start-up imports (apache_beam, mlcroissant), which tensorflow-datasets 4.9.10
needs even for this and which are not among our dependencies.
"""

import os

from absl import app, flags

from sppnet_jax.errors import DataError

ARCHIVES = {'voc/2007': ('VOCtrainval_06-Nov-2007.tar',
                         'VOCtest_06-Nov-2007.tar')}


def prepare(name: str, data_dir: str, manual_dir: str):
  """Prepares TFDS `name` in `data_dir` from the archives in `manual_dir`;
  returns the builder (nothing is done when it is already prepared)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = os.path.abspath(os.path.expanduser(data_dir))
  manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
  missing = [f for f in ARCHIVES.get(name, ())
             if not os.path.isfile(os.path.join(manual_dir, f))]
  if missing:
    raise DataError(f'{", ".join(missing)} not found in {manual_dir}: put the '
                    f'official archives of {name} there under these names.')
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False))
  return builder


def main(argv):
  del argv
  builder = prepare(flags.FLAGS.name, flags.FLAGS.data_dir,
                    flags.FLAGS.manual_dir)
  splits = ', '.join(f'{k} {v.num_examples}'
                     for k, v in builder.info.splits.items())
  print(f'{flags.FLAGS.name} prepared in {builder.data_dir}: {splits}')


if __name__ == '__main__':
  flags.DEFINE_string('name', 'voc/2007', 'The TFDS data set.')
  flags.DEFINE_string('data_dir', None, 'The TFDS data_dir to prepare it in.')
  flags.DEFINE_string('manual_dir', None, 'The folder holding the archives.')
  flags.mark_flags_as_required(['data_dir', 'manual_dir'])
  app.run(main)
