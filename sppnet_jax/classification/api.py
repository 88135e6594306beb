"""A trained classifier from Python: `load_classifier(path)` -> `Classifier`.

  classifier = sppnet_jax.load_classifier('runs/tiny')
  probabilities = classifier.predict(['a.jpg', image_array])  # (N, K)
  classifier.top_k('a.jpg', k=5)  # [[(class name, probability), ...]]

The checkpoint is restored with the config saved with it; images are
prepared exactly as the eval protocol of the same name prepares its single
view (eval_views.py): `full_image` (SPP-net's default, the paper's point: the
whole image at its own aspect ratio, short side to eval_resize, each side
rounded to a multiple of eval.full_image_step, so compilations stay as few
as the shape buckets) or `center` (short side to eval_resize, the eval_size
center crop; the only one a fixed-size ZFNet takes). `--mode=predict` is a
command line over the same object (predict.py).
"""

import collections

import jax
import numpy as np

from sppnet_jax import runtime
from sppnet_jax.classification import eval_views, export
from sppnet_jax.classification.restore import restore
from sppnet_jax.classification.saved_run import saved_config_at
from sppnet_jax.core.data import image_files
from sppnet_jax.errors import ConfigError

PROTOCOLS = ('full_image', 'center')
MAX_BATCH = 64  # images per call of the network (each padded to a power of 2)


def preparation(config, protocol: str):
  """image -> its single view of the eval protocol `protocol` ('full_image'
  or 'center'), with config's eval_resize, eval_size, eval.full_image_step
  and resize_antialias."""
  spec = eval_views.ViewSpec(scales=(config.eval_resize,), kind=protocol,
                             crop=config.eval_size,
                             step=config.eval.full_image_step, flip=False)
  antialias = bool(config.get('resize_antialias', False))
  return lambda image: eval_views.views_at_scale(
      image, config.eval_resize, spec, antialias)[0].numpy()


class Classifier:
  """A trained classifier: `predict` and `top_k` on images.

  Attributes:
    class_names: the K class names, in the order of the probabilities.
    protocol: 'full_image' or 'center', how images are prepared.
    step: the checkpoint's training step (None for exported artefacts).
  """

  def __init__(self, prepare, run, class_names, *, protocol: str,
               step: int | None = None):
    self._prepare, self._run = prepare, run
    self.class_names = tuple(class_names)
    self.protocol, self.step = protocol, step

  def predict(self, images) -> np.ndarray:
    """(N, K) float32 softmax probabilities of `images`: one image (a file
    path or a uint8 (H, W, 3) array), an (N, H, W, 3) uint8 batch, or a list
    of paths and arrays of any sizes. Views of one shape run as batches of
    at most MAX_BATCH.

    Raises:
      DataError: a file that is not a readable image (named), or an array
        that is not uint8 RGB.
    """
    views = [self._prepare(image) for image in image_files.images_of(images)]
    out = np.zeros((len(views), len(self.class_names)), np.float32)
    by_shape = collections.defaultdict(list)
    for i, view in enumerate(views):
      by_shape[view.shape].append(i)
    for indices in by_shape.values():
      for start in range(0, len(indices), MAX_BATCH):
        chunk = indices[start:start + MAX_BATCH]
        batch = np.stack([views[i] for i in chunk])
        padded = 1 << (len(chunk) - 1).bit_length()  # few compilations
        batch = np.pad(batch, [(0, padded - len(chunk))] + [(0, 0)] * 3)
        out[chunk] = np.asarray(self._run(batch))[:len(chunk)]
    return out

  def top_k(self, images, k: int = 5) -> list[list[tuple[str, float]]]:
    """Per image of `images` (as `predict` takes them), its k most probable
    (class name, probability), most probable first."""
    out = []
    for row in self.predict(images):
      order = np.argsort(-row, kind='stable')[:k]
      out.append([(self.class_names[i], float(row[i])) for i in order])
    return out


def from_checkpoint(config, workdir: str, *, protocol: str | None = None,
                    short_side: int | None = None,
                    crop_size: int | None = None) -> Classifier:
  """The classifier of the checkpoint config.eval selects in `workdir`,
  restored on this process's devices. `protocol` (default: 'full_image'
  for a network that takes any input size, else 'center'), `short_side`
  and `crop_size` override the protocol, eval_resize and eval_size."""
  runtime.keep_tensorflow_off_accelerators()
  restored = restore(config, workdir, with_data=False)
  model, config = restored.model, restored.config.copy_and_resolve_references()
  protocol = protocol or ('full_image' if model.any_input_size else 'center')
  if protocol not in PROTOCOLS:
    raise ConfigError(f'protocol={protocol!r}: use one of {PROTOCOLS}.')
  if protocol == 'full_image' and not model.any_input_size:
    raise ConfigError(f'a {config.model} takes only {config.eval_size}-pixel '
                      "inputs: use protocol='center'.")
  config.eval_resize = short_side or config.eval_resize
  config.eval_size = crop_size or config.eval_size
  run = jax.jit(export.inference_function(model, restored.params))
  return Classifier(preparation(config, protocol), run, restored.class_names,
                    protocol=protocol, step=restored.step)


def from_export(config, out_dir: str) -> Classifier:
  """The classifier of the artefacts in `out_dir` (export.py) at the
  exported eval size: center crops, prepared as the manifest says."""
  runtime.keep_tensorflow_off_accelerators()
  manifest, artefacts = export.load_exported(out_dir)
  preprocessing = manifest['preprocessing']
  # 'centre_crop': the key of artefacts exported by sppnet_jax 0.1.
  size = preprocessing.get('center_crop', preprocessing.get('centre_crop'))
  config = config.copy_and_resolve_references()
  config.eval_resize = preprocessing['resize_short_side']
  config.eval_size = size
  return Classifier(preparation(config, 'center'),
                    lambda images: export.run_exported(artefacts[size], images),
                    manifest['class_names'], protocol='center')


def load_classifier(path, *, protocol: str | None = None,
                    short_side: int | None = None,
                    crop_size: int | None = None) -> Classifier:
  """The trained classifier at `path`: a workdir (its best checkpoint, else
  its latest) or a step folder (WORKDIR/best/1000), with the config it was
  trained with; the keywords as `from_checkpoint` takes them.

  Raises:
    CheckpointNotFoundError: no checkpoint at `path`.
    ConfigError: an unknown protocol, or full_image for a ZFNet.
  """
  config, workdir = saved_config_at(path)
  return from_checkpoint(config, workdir, protocol=protocol,
                         short_side=short_side, crop_size=crop_size)
