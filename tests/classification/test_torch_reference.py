"""The PyTorch reference of benchmarks/ is the same network as the Flax model,
for each of the paper's four architectures with and without SPP: same logits
from the same parameters (skipped when PyTorch is not installed; it is a
benchmark-only dependency, requirements-bench.txt)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sppnet_jax import NoSPPNet, SPPNet, ZFNet, normalize_images

torch = pytest.importorskip('torch')
from benchmarks import torch_reference  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize('name,architecture,size', [
    ('sppnet', 'zf5', 67), ('sppnet', 'zf5', 48), ('zfnet', 'zf5', 224),
    ('sppnet', 'convnet5', 71), ('nospp', 'convnet5', 224),
    ('sppnet', 'overfeat5', 80), ('nospp', 'overfeat5', 224),
    ('sppnet', 'overfeat7', 83), ('nospp', 'overfeat7', 224)])
def test_same_logits_from_the_same_parameters(name, architecture, size):
  kwargs = dict(num_classes=7, fc_dim=16, width_multiplier=0.25, initializer='he')
  if name == 'sppnet':
    model = SPPNet(architecture=architecture, **kwargs)
  elif name == 'zfnet':
    model = ZFNet(image_size=size, **kwargs)
  else:
    model = NoSPPNet(architecture=architecture, image_size=size, **kwargs)
  images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), np.uint8)
  params = model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)),
                      train=False)['params']
  want = model.apply({'params': params}, normalize_images(jnp.asarray(images)),
                     train=False)
  reference = torch_reference.PaperNet(name, num_classes=7, fc_dim=16,
                                       width_multiplier=0.25,
                                       architecture=architecture)
  torch_reference.load_flax_params(reference, jax.device_get(params))
  reference.eval()
  with torch.no_grad():
    got = reference(torch_reference.normalize(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()))
  np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_train_and_eval_steps_run():
  reference = torch_reference.PaperNet('sppnet', num_classes=5, fc_dim=8,
                                       width_multiplier=0.1)
  step = torch_reference.make_train_step(reference,
                                         torch_reference.create_optimizer(reference))
  images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
  labels = torch.tensor([1, 3])
  assert torch.isfinite(step(images, labels))
  loss, correct = torch_reference.make_eval_step(reference)(images, labels)
  assert torch.isfinite(loss) and 0 <= int(correct) <= 2
