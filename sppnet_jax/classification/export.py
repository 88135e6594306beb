"""Serialised inference: `jax.export` artefacts that run without this library.

`python main.py --mode=export --workdir=DIR` writes DIR/export/:

  sppnet_224x224.jax_exported ...  one per input size: uint8 RGB NHWC images of
                                   any batch size (the batch is symbolic) -> softmax
                                   probabilities; normalisation is inside
  export.json                      class names, sizes, files, preprocessing

Anyone with jax can run them:

  exported = jax.export.deserialize(open(path, 'rb').read())
  probabilities = exported.call(images_uint8)
"""

import json
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.core.zf5 import MEAN_RGB, STDDEV_RGB, normalize_images
from sppnet_jax.errors import CheckpointNotFoundError

MANIFEST = 'export.json'
PLATFORMS = ('cpu', 'cuda')


def inference_function(model, params):
  """uint8 NHWC images -> class probabilities, parameters closed over."""

  def predict(images):
    logits = model.apply({'params': params}, normalize_images(images, model.dtype),
                         train=False)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  return predict


def export_sizes(config) -> list[int]:
  return sorted(set(config.train_sizes) | {config.eval_size})


def export_model(model, params, sizes: Sequence[int], out_dir: str, *,
                 class_names: Sequence[str], config,
                 platforms: Sequence[str] = PLATFORMS) -> str:
  """Writes one artefact per square input size and the manifest; returns the
  manifest's path."""
  os.makedirs(out_dir, exist_ok=True)
  # Plain XLA convolutions: the CPU-specific im2col graphs would be baked into
  # the CUDA artefact too.
  model = model.clone(conv_impl='xla')
  predict = jax.jit(inference_function(model, params))
  (batch,) = jax.export.symbolic_shape('batch')
  files = {}
  for size in sizes:
    spec = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8)
    exported = jax.export.export(predict, platforms=tuple(platforms))(spec)
    name = f'{config.model}_{size}x{size}.jax_exported'
    with open(os.path.join(out_dir, name), 'wb') as f:
      f.write(exported.serialize())
    files[str(size)] = name
  manifest = dict(
      model=config.model, class_names=list(class_names), files=files,
      platforms=list(platforms),
      input='uint8 RGB images, NHWC, any batch size; normalised inside',
      output='softmax probabilities over class_names',
      preprocessing=dict(resize_short_side=config.eval_resize,
                         center_crop=config.eval_size,
                         mean_rgb=list(MEAN_RGB), stddev_rgb=list(STDDEV_RGB)))
  path = os.path.join(out_dir, MANIFEST)
  with open(path, 'w') as f:
    json.dump(manifest, f, indent=1)
  return path


def load_exported(out_dir: str) -> tuple[dict, dict[int, 'jax.export.Exported']]:
  """The manifest and the deserialised artefacts by input size."""
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.isfile(path):
    raise CheckpointNotFoundError(f'no {MANIFEST} in {out_dir}: run --mode=export '
                                  'with this --workdir first.')
  with open(path) as f:
    manifest = json.load(f)
  artefacts = {}
  for size, name in manifest['files'].items():
    with open(os.path.join(out_dir, name), 'rb') as f:
      artefacts[int(size)] = jax.export.deserialize(bytearray(f.read()))
  return manifest, artefacts


def run_exported(exported, images: np.ndarray) -> np.ndarray:
  return np.asarray(exported.call(jnp.asarray(images, jnp.uint8)))
