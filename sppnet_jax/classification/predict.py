"""--mode=predict: the top-k classes of image files, by an `api.Classifier`
(from a checkpoint, or from exported artefacts: center crops at the
exported size). A file that is not a readable image is reported and the
others go on.
"""

from typing import Sequence

from sppnet_jax.classification.api import Classifier
from sppnet_jax.core.data import image_files, image_ops

# The short side at `short_side`, the aspect kept, each side rounded to a
# multiple of `step` (the shape bucket, as the full_image eval protocol makes).
full_image_shape = image_ops.full_image_size


def predict_files(paths: Sequence[str], classifier: Classifier,
                  top_k: int = 5) -> list[dict]:
  """[{'file', 'predictions': [(name, probability)...]} or {'file', 'error'}] in
  the order of `paths`; the readable images go to `classifier.top_k` at once
  (views of one shape run as one batch)."""
  results, images = {}, {}
  for path in paths:
    image, error = image_files.read_image(path)
    if image is None:
      results[path] = dict(file=path, error=error)
    else:
      images[path] = image
  predictions = classifier.top_k(list(images.values()), top_k) if images else []
  for path, best in zip(images, predictions):
    results[path] = dict(file=path, predictions=best)
  return [results[path] for path in paths]
