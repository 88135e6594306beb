"""--mode=eval: score a saved checkpoint with one of the paper's test protocols
and write the metrics next to the run."""

import json
import os

import jax
import ml_collections

from sppnet_jax.classification import evaluate
from sppnet_jax.classification.restore import restore
from sppnet_jax.core import metric_output


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Restores the checkpoint config.eval selects on whatever devices this run
  has, scores the validation split with config.eval.protocol, and writes the
  metrics to WORKDIR/eval/ (a JSON file per step, and TensorBoard scalars)."""
  restored = restore(config, workdir, with_data=True)
  run = restored.run
  eval_step = evaluate.make_eval_step(run.model, run.mesh, restored.params_sharding)
  metrics = evaluate.evaluate_protocol(eval_step, run.model, restored.params,
                                       run.config, run.mesh, source=run.source)
  metrics.update(step=int(restored.step), checkpoint=restored.path)
  if jax.process_index() == 0:
    out_dir = os.path.join(workdir, 'eval')
    os.makedirs(out_dir, exist_ok=True)
    # The center crop keeps the plain names (it is what training reports).
    protocol = run.config.eval.protocol
    suffix = '' if protocol == 'center' else f'_{protocol}'
    path = os.path.join(out_dir, f'metrics_step_{restored.step}{suffix}.json')
    with open(path, 'w') as f:
      json.dump(metrics, f, indent=1)
    writer = metric_output.open_writer(out_dir)
    writer.write_scalars(restored.step, {
        f'eval{suffix}_{k}': v for k, v in metrics.items()
        if isinstance(v, (int, float))})
    writer.close()
  return metrics
