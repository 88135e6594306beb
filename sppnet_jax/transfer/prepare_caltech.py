"""Prepares TFDS caltech101 from the official archive, with no network:

  python -m sppnet_jax.transfer.prepare_caltech \
      --data_dir=D --manual_dir=M

with caltech-101.zip (https://doi.org/10.22002/D1.20086) in M under this
name. The genuine TFDS builder finds it there by name, checks its size and
sha256 against the registered ones, extracts it and prepares `caltech101`
in D (through `detection.data.prepare_voc.prepare`, the same offline path as
VOC). TFDS's own train/test split (30 per class, one fixed draw) is not the
paper's protocol: a transfer run reads both splits as one set and draws
`splits.num_splits` random splits of its own (transfer/splits.py).
"""

import os

from absl import app, flags

from sppnet_jax.errors import DataError

NAME = 'caltech101'
ARCHIVE = 'caltech-101.zip'
PREPARE_HINT = (
    f'put {ARCHIVE} (the official archive) in {{manual_dir}} and run: python '
    '-m sppnet_jax.transfer.prepare_caltech '
    '--data_dir={data_dir} --manual_dir={manual_dir} (or point '
    '--config.data_dir at a prepared TFDS folder).')


def prepare(data_dir: str, manual_dir: str):
  """Prepares TFDS caltech101 in `data_dir` from `manual_dir`/caltech-101.zip;
  returns the builder (nothing is done when it is already prepared)."""
  from sppnet_jax.detection.data import prepare_voc  # pylint: disable=g-import-not-at-top
  archive = os.path.join(os.path.abspath(os.path.expanduser(manual_dir)),
                         ARCHIVE)
  if not os.path.isfile(archive):
    raise DataError(f'{archive} not found: put the official Caltech101 '
                    f'archive there under the name {ARCHIVE}.')
  return prepare_voc.prepare(NAME, data_dir, manual_dir)


def main(argv):
  del argv
  builder = prepare(flags.FLAGS.data_dir, flags.FLAGS.manual_dir)
  splits = ', '.join(f'{k} {v.num_examples}'
                     for k, v in builder.info.splits.items())
  print(f'{NAME} prepared in {builder.data_dir}: {splits}')


if __name__ == '__main__':
  flags.DEFINE_string('data_dir', None, 'The TFDS data_dir to prepare it in.')
  flags.DEFINE_string('manual_dir', None, 'The folder holding the archive.')
  flags.mark_flags_as_required(['data_dir', 'manual_dir'])
  app.run(main)
