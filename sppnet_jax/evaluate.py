"""Evaluation on the validation split: every example counted exactly once.

Batches are padded to the batch size and carry a mask, so the last partial batch
is scored, never dropped; the metrics average over masked-in examples only.
"""

import jax

from sppnet_jax import input_pipeline, parallel
from sppnet_jax.metrics import EvalMetrics, classification_outputs
from sppnet_jax.models import normalize_images


def make_eval_step(model, mesh, params_sharding):
  """A jitted step: (params, batch) -> EvalMetrics of the batch's masked examples."""

  def eval_step(params, batch):
    images = normalize_images(batch['image'], model.dtype)
    logits = model.apply({'params': params}, images, train=False)
    outputs = classification_outputs(logits, batch['label'])
    return EvalMetrics.single_from_model_output(mask=batch['mask'], **outputs)

  return jax.jit(eval_step, in_shardings=(params_sharding,
                                           parallel.batch_sharding(mesh)),
                 out_shardings=parallel.replicated_sharding(mesh))


def evaluate(eval_step, params, config, mesh) -> dict:
  """Scores the whole validation split (or `steps_per_eval` batches)."""
  local_batch = parallel.local_batch_size(config.eval_batch_size, 'eval_batch_size')
  dataset = input_pipeline.eval_dataset(
      config, local_batch_size=local_batch, process_index=jax.process_index(),
      process_count=jax.process_count())
  if config.steps_per_eval > 0:
    dataset = dataset.take(config.steps_per_eval)
  totals = None
  for batch in parallel.prefetch_to_mesh(dataset.as_numpy_iterator(), mesh):
    batch_metrics = eval_step(params, batch)
    totals = batch_metrics if totals is None else totals.merge(batch_metrics)
  if totals is None:
    raise ValueError('the validation split is empty: check --config.eval_split '
                     'and --config.data_dir.')
  return {k: float(v) if k != 'num_examples' else v
          for k, v in jax.device_get(totals.compute()).items()}
