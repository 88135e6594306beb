"""One way to restore a trained classification checkpoint, for eval mode,
export and predict.

The checkpoint is found first (`checkpoints.find_checkpoint`, by
config.eval.checkpoint_path / checkpoint_step, else the best step), so that a
mistyped --workdir fails in a second and creates nothing. Then either the run is
set up from the data (eval mode: the validation split is needed anyway) or the
class count and names come from the checkpoint (export, predict: no data).
"""

import dataclasses
import os
from typing import Any

import ml_collections
import optax

from sppnet_jax.classification import input_pipeline, train
from sppnet_jax.classification.config import base_config, validate_config
from sppnet_jax.classification.model import create_model
from sppnet_jax.core import checkpoints, parallel


@dataclasses.dataclass
class Restored:
  """A checkpoint restored on this process's devices."""
  config: ml_collections.ConfigDict  # resolved (num_classes set)
  model: Any
  params: Any  # replicated over `mesh`
  params_sharding: Any
  mesh: Any
  step: int
  path: str  # the step folder
  class_names: tuple[str, ...]
  run: train.Run | None  # with_data only: the run set up from the data


def restore(config: ml_collections.ConfigDict, workdir: str, *,
            with_data: bool) -> Restored:
  """The checkpoint config.eval selects in `workdir`, restored; `with_data`
  also opens the data (and makes the embedded set if needed)."""
  selected = checkpoints.find_checkpoint(
      workdir, path=config.eval.checkpoint_path, step=config.eval.checkpoint_step)
  run = None
  if with_data:
    input_pipeline.prepare_data(config)
    run = train.setup(config)
    config, model, mesh = run.config, run.model, run.mesh
    state, sharding = run.state, run.state_sharding
  else:
    metadata = checkpoints.read_metadata(selected.manager, selected.step)
    config = ml_collections.ConfigDict(config.to_dict())
    config.num_classes = metadata['model']['num_classes']
    validate_config(config)
    model, mesh = create_model(config), parallel.create_mesh()
    state, sharding = train.initial_state(config, model,
                                          optax.constant_schedule(0.0), mesh)
  state, metadata = checkpoints.restore(selected.manager, selected.step, state,
                                        config)
  selected.manager.close()
  return Restored(config=config, model=model, params=state.params,
                  params_sharding=sharding.params, mesh=mesh, step=selected.step,
                  path=selected.path, class_names=tuple(metadata['class_names']),
                  run=run)


def saved_config_at(path: str) -> tuple[ml_collections.ConfigDict, str]:
  """(config, workdir) of the checkpoint at `path`: a workdir (its best
  checkpoint, else its latest) or a step folder (WORKDIR/best/1000). The
  config is the one saved with the checkpoint, its eval.checkpoint_path set
  to the step folder, so that `restore(config, workdir, ...)` restores
  exactly that step.

  Raises:
    CheckpointNotFoundError: nothing to restore at `path`.
  """
  path = os.path.abspath(os.path.expanduser(str(path).rstrip('/')))
  is_step = os.path.basename(path).isdigit()
  workdir = os.path.dirname(os.path.dirname(path)) if is_step else path
  selected = checkpoints.find_checkpoint(workdir, path=path if is_step else '')
  metadata = checkpoints.read_metadata(selected.manager, selected.step)
  selected.manager.close()
  config = checkpoints.saved_config(metadata, base_config())
  config.eval.checkpoint_path = selected.path
  config.eval.checkpoint_step = -1
  return config, workdir
