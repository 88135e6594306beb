"""Top-k predictions for image files, from a checkpoint or exported artefacts.

From a checkpoint the default is the paper's point: the whole image at its own
aspect ratio (short side resized to eval_resize, each side then rounded to a
multiple of eval.full_image_step so that compilations stay few). From exported
artefacts (fixed sizes) the image is resized and center-cropped to eval_size.
A file that is not a readable image is reported and the others go on.
"""

import collections
from typing import Sequence

import jax
import numpy as np

from sppnet_jax.classification import eval_views, export
from sppnet_jax.classification.restore import restore
from sppnet_jax.core.data import image_files, image_ops

# The short side at `short_side`, the aspect kept, each side rounded to a
# multiple of `step` (the shape bucket, as the full_image eval protocol makes).
full_image_shape = image_ops.full_image_size


def _prepare(config, kind: str):
  """image -> its single view: `kind` 'full_image' or 'center', exactly as the
  eval protocol of that name makes it."""
  spec = eval_views.ViewSpec(scales=(config.eval_resize,), kind=kind,
                             crop=config.eval_size,
                             step=config.eval.full_image_step, flip=False)
  antialias = bool(config.get('resize_antialias', False))
  return lambda image: eval_views.views_at_scale(
      image, config.eval_resize, spec, antialias)[0].numpy()


def _top_k(probabilities: np.ndarray, class_names: Sequence[str], k: int):
  order = np.argsort(-probabilities)[:k]
  return [(class_names[i], float(probabilities[i])) for i in order]


def predict_files(paths: Sequence[str], *, prepare, run, class_names,
                  top_k: int = 5) -> list[dict]:
  """[{'file', 'predictions': [(name, probability)...]} or {'file', 'error'}] in
  the order of `paths`; images of one shape are run as one batch."""
  results, by_shape = {}, collections.defaultdict(list)
  for path in paths:
    image, error = image_files.read_image(path)
    if image is None:
      results[path] = dict(file=path, error=error)
      continue
    image = prepare(image)
    by_shape[image.shape].append((path, image))
  for items in by_shape.values():
    probabilities = run(np.stack([image for _, image in items]))
    for (path, _), row in zip(items, probabilities):
      results[path] = dict(file=path, predictions=_top_k(row, class_names, top_k))
  return [results[path] for path in paths]


def predictor_from_checkpoint(config, workdir: str):
  """(prepare, run, class_names) for the checkpoint config.eval selects."""
  restored = restore(config, workdir, with_data=False)
  run = jax.jit(export.inference_function(restored.model, restored.params))
  prepare = _prepare(config, 'full_image' if restored.model.any_input_size
                     else 'center')
  return (prepare, lambda images: np.asarray(run(images)),
          list(restored.class_names))


def predictor_from_export(config, out_dir: str):
  """(prepare, run, class_names) for the artefact of the eval size."""
  manifest, artefacts = export.load_exported(out_dir)
  preprocessing = manifest['preprocessing']
  # 'centre_crop': the key of artefacts exported by sppnet_jax 0.1.
  size = preprocessing.get('center_crop', preprocessing.get('centre_crop'))
  config = config.copy_and_resolve_references()
  config.eval_resize = manifest['preprocessing']['resize_short_side']
  config.eval_size = size
  return (_prepare(config, 'center'),
          lambda images: export.run_exported(artefacts[size], images),
          manifest['class_names'])
