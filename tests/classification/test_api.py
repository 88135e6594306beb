"""`load_classifier` against --mode=eval's own per-image softmax (the view
protocols' dataset and step, before they are averaged over the split), on
image files and arrays of several sizes; unreadable input and missing
checkpoints as one-line user errors."""

import os
import shutil

import cv2
import jax
import numpy as np
import pytest

import sppnet_jax
from sppnet_jax.classification import eval_views, evaluate, input_pipeline
from sppnet_jax.classification.restore import restore
from sppnet_jax.core import parallel
from sppnet_jax.errors import CheckpointNotFoundError, DataError, UserError
from tests.classification.test_checkpoint_compat import SAVED
from tests.helpers import small_config

# (height, width) of the generated validation images: portrait, landscape,
# square, and one whose full-image view is a bucket of its own.
SIZES = ((50, 90), (120, 64), (64, 64), (200, 100))


@pytest.fixture(scope='module')
def setup(small_data, tmp_path_factory):
  """(workdir of the saved test checkpoint, data folder whose val split is a
  few embedded JPEGs and PNGs of SIZES, the PNGs' arrays)."""
  root = tmp_path_factory.mktemp('api')
  workdir = root / 'run'
  shutil.copytree(SAVED, workdir / 'checkpoints')
  data = root / 'data'
  os.makedirs(data / 'val' / 'circle')
  os.makedirs(data / 'val' / 'ring')
  os.symlink(os.path.join(small_data, 'train'), data / 'train')
  for name in sorted(os.listdir(os.path.join(small_data, 'val', 'circle')))[:2]:
    shutil.copy(os.path.join(small_data, 'val', 'circle', name),
                data / 'val' / 'circle' / name)
  rng = np.random.default_rng(0)
  arrays = [rng.integers(0, 256, size + (3,), dtype=np.uint8) for size in SIZES]
  for i, array in enumerate(arrays):
    cv2.imwrite(str(data / 'val' / 'ring' / f'{i}.png'),
                cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
  return str(workdir), str(data), arrays


def _eval_softmax(workdir: str, data: str, protocol: str) -> dict:
  """{file: softmax} of every validation image, as --mode=eval computes it
  with `protocol` (eval_views' dataset, evaluate's view step)."""
  config = small_config(data, num_epochs=1, dataset='imagefolder')
  config.eval.protocol = protocol
  restored = restore(config, workdir, with_data=False)
  config = restored.config
  source = input_pipeline.open_source(config)
  mesh = evaluate.local_mesh()
  params = jax.device_put(
      jax.tree.map(lambda x: x.addressable_data(0), restored.params),
      parallel.replicated_sharding(mesh))
  step = evaluate.make_view_step(restored.model, mesh,
                                 eval_views.view_spec(config))
  out = {}
  for batch in eval_views.views_dataset(config, local_batch_size=4, devices=1,
                                        source=source).as_numpy_iterator():
    summed = np.asarray(step(params, batch['views']))
    for pos, row in zip(batch['pos'][batch['mask']], summed[batch['mask']]):
      rel = source.eval.rel_paths[pos].decode()
      out[os.path.join(source.eval.directory, rel)] = row
  return out


@pytest.mark.parametrize('protocol', ['full_image', 'center'])
def test_predict_equals_eval_modes_softmax(setup, protocol):
  workdir, data, arrays = setup
  reference = _eval_softmax(workdir, data, protocol)
  files = sorted(reference)
  assert len(files) == 2 + len(SIZES)
  classifier = sppnet_jax.load_classifier(workdir, protocol=protocol)
  assert classifier.step == 5 and classifier.class_names[:2] == ('checkerboard',
                                                                  'circle')
  got = classifier.predict(files)
  assert got.shape == (len(files), 10) and got.dtype == np.float32
  np.testing.assert_allclose(got, [reference[f] for f in files], atol=2e-6)
  # The PNGs as arrays of four sizes, alone, listed and mixed with paths.
  pngs = [os.path.join(data, 'val', 'ring', f'{i}.png') for i in range(len(SIZES))]
  want = np.array([reference[f] for f in pngs])
  np.testing.assert_allclose(classifier.predict(arrays), want, atol=2e-6)
  np.testing.assert_allclose(classifier.predict(arrays[0]), want[:1], atol=2e-6)
  mixed = classifier.predict([arrays[1], pngs[2], arrays[3]])
  np.testing.assert_allclose(mixed, want[1:], atol=2e-6)
  top = classifier.top_k(files[:3], k=3)
  for row, probabilities in zip(top, got):
    order = np.argsort(-probabilities)[:3]
    assert [name for name, _ in row] == [classifier.class_names[i] for i in order]
    np.testing.assert_allclose([p for _, p in row], probabilities[order])


def test_default_protocol_batches_and_step_folders(setup):
  """SPP-net predicts on the full image by default; an NHWC batch is its
  images; a step folder loads that step."""
  workdir, _, arrays = setup
  classifier = sppnet_jax.load_classifier(os.path.join(workdir, 'checkpoints',
                                                       '5'))
  assert classifier.protocol == 'full_image' and classifier.step == 5
  batch = np.stack([arrays[2], arrays[2][::-1]])
  np.testing.assert_allclose(classifier.predict(batch),
                             classifier.predict(list(batch)), atol=2e-6)
  assert classifier.predict([]).shape == (0, 10)


def test_bad_input_and_missing_checkpoints_are_one_line_user_errors(setup,
                                                                    tmp_path):
  workdir, data, arrays = setup
  classifier = sppnet_jax.load_classifier(workdir)
  broken = tmp_path / 'broken.jpg'
  broken.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
  good = os.path.join(data, 'val', 'ring', '0.png')
  with pytest.raises(DataError, match=f'^{broken}: not a readable image'):
    classifier.predict([good, str(broken)])
  with pytest.raises(DataError, match='no such image file: nope.jpg'):
    classifier.predict('nope.jpg')
  with pytest.raises(DataError, match='image 1 is a float32 array'):
    classifier.predict([arrays[0], arrays[0].astype(np.float32)])
  with pytest.raises(CheckpointNotFoundError) as error:
    sppnet_jax.load_classifier(str(tmp_path))
  assert isinstance(error.value, UserError)
  assert f'no checkpoint in {tmp_path}' in str(error.value)
  assert '\n' not in str(error.value)
  with pytest.raises(UserError, match='protocol='):
    sppnet_jax.load_classifier(workdir, protocol='ten_view')
