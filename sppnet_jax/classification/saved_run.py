"""A trained classification checkpoint restored without its data: the config
saved with it, its class count and names, its parameters. Export, predict,
the Python API, warm starts and detection backbones read runs this way;
`restore` adds the data-driven set-up of eval mode on top.
"""

import dataclasses
import os
from typing import Any

import ml_collections
import optax

from sppnet_jax.classification.config import base_config, validate_config
from sppnet_jax.classification.model import create_model
from sppnet_jax.classification.state import initial_state
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
  run: Any = None  # restore(with_data=True) only: the train.Run set up from the data


def restore_selected(config: ml_collections.ConfigDict,
                     selected: checkpoints.Selected) -> Restored:
  """The step `selected` names, restored into the model of `config` with the
  class count saved with it (a CheckpointError where the other model fields
  differ); closes the selected manager."""
  metadata = checkpoints.read_metadata(selected.manager, selected.step)
  config = ml_collections.ConfigDict(config.to_dict())
  config.num_classes = metadata['model']['num_classes']
  validate_config(config)
  model, mesh = create_model(config), parallel.create_mesh()
  state, sharding = initial_state(config, model, optax.constant_schedule(0.0),
                                  mesh)
  state, metadata = checkpoints.restore(selected.manager, selected.step, state,
                                        config)
  selected.manager.close()
  return Restored(config=config, model=model, params=state.params,
                  params_sharding=sharding.params, mesh=mesh, step=selected.step,
                  path=selected.path, class_names=tuple(metadata['class_names']))


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


def restore_saved(config: ml_collections.ConfigDict) -> Restored:
  """The step folder config.eval.checkpoint_path names, restored into the
  model of `config` (the pair `saved_config_at` returns)."""
  return restore_selected(config, checkpoints.find_checkpoint(
      '', path=config.eval.checkpoint_path))
