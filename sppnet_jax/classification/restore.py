"""One way to restore a trained classification checkpoint, for eval mode,
export and predict.

The checkpoint is found first (`checkpoints.find_checkpoint`, by
config.eval.checkpoint_path / checkpoint_step, else the best step), so that a
mistyped --workdir fails in a second and creates nothing. Then either the run is
set up from the data (eval mode: the validation split is needed anyway) or the
class count and names come from the checkpoint (export, predict: no data; see
`saved_run`).
"""

import ml_collections

from sppnet_jax.classification import input_pipeline, train
from sppnet_jax.classification.saved_run import Restored, restore_selected
from sppnet_jax.core import checkpoints


def restore(config: ml_collections.ConfigDict, workdir: str, *,
            with_data: bool) -> Restored:
  """The checkpoint config.eval selects in `workdir`, restored; `with_data`
  also opens the data (and makes the embedded set if needed)."""
  selected = checkpoints.find_checkpoint(
      workdir, path=config.eval.checkpoint_path, step=config.eval.checkpoint_step)
  if not with_data:
    return restore_selected(config, selected)
  input_pipeline.prepare_data(config)
  run = train.setup(config)
  state, metadata = checkpoints.restore(selected.manager, selected.step,
                                        run.state, run.config)
  selected.manager.close()
  return Restored(config=run.config, model=run.model, params=state.params,
                  params_sharding=run.state_sharding.params, mesh=run.mesh,
                  step=selected.step, path=selected.path,
                  class_names=tuple(metadata['class_names']), run=run)
