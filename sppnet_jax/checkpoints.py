"""Orbax checkpoints: the latest states (resume) and the best states (by val top-1).

Both live in the workdir: `checkpoints/` keeps the latest `keep_latest_checkpoints`
states, saved every `checkpoint_every_steps`, on preemption and at the end;
`best/` keeps the `keep_best_checkpoints` states with the highest validation top-1.
Each step stores the train state and a JSON record of the config and class names,
so a checkpoint is checked against the model it is restored into.
"""

import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

STATE, METADATA = 'state', 'metadata'
# Fields that decide the shapes of the parameters: a checkpoint only fits a model
# whose fields match.
MODEL_FIELDS = ('model', 'num_classes', 'spp_levels', 'width_multiplier', 'fc_dim',
                'lrn')


# Fields that may change between a run and its resumption without changing what
# is computed (where the data lives, how often to log, save and evaluate).
RESUMABLE_FIELDS = frozenset({
    'data_dir', 'manual_dir', 'log_every_steps', 'checkpoint_every_steps',
    'keep_best_checkpoints', 'keep_latest_checkpoints', 'eval_every_steps',
    'steps_per_eval', 'eval_batch_size', 'data_threads', 'cache_eval',
    'allow_config_change', 'eval'})


def config_changes(saved: dict, config) -> list[str]:
  """The fields, other than RESUMABLE_FIELDS, whose values differ from the
  config a checkpoint was written with."""
  current = config.to_dict()
  normal = lambda v: list(v) if isinstance(v, (tuple, list)) else v
  return [f'{k}: {normal(saved.get(k))!r} -> {normal(current.get(k))!r}'
          for k in sorted(set(saved) | set(current))
          if k not in RESUMABLE_FIELDS and normal(saved.get(k)) != normal(current.get(k))]


class CheckpointMismatchError(ValueError):
  """A checkpoint that does not fit the configured model."""


def _latest_manager(workdir: str, config) -> ocp.CheckpointManager:
  every = max(int(config.checkpoint_every_steps), 1)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_latest_checkpoints,
      save_decision_policy=policies.AnySavePolicy([
          policies.FixedIntervalPolicy(every),
          policies.PreemptionCheckpointingPolicy(),
      ]),
      create=True)
  return ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                               options=options, item_names=(STATE, METADATA))


def _best_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_best_checkpoints, best_fn=lambda m: m['top1'],
      best_mode='max', keep_checkpoints_without_metrics=False, create=True)
  return ocp.CheckpointManager(os.path.join(workdir, 'best'), options=options,
                               item_names=(STATE, METADATA))


def open_directory(path: str) -> ocp.CheckpointManager:
  """A read-only manager over a folder of step folders (a workdir's
  `checkpoints/` or `best/`, possibly copied elsewhere)."""
  return ocp.CheckpointManager(
      os.path.abspath(path), item_names=(STATE, METADATA),
      options=ocp.CheckpointManagerOptions(read_only=True, create=False))


def model_signature(config) -> dict:
  """The config fields that fix the parameter shapes, JSON-friendly."""
  return {k: list(v) if isinstance(v, (tuple, list)) else v
          for k, v in ((k, config.get(k)) for k in MODEL_FIELDS)}


class Checkpoints:
  """The two managers of a workdir and the metadata written with every save."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict,
               class_names: tuple[str, ...] = ()):
    self.workdir = os.path.abspath(workdir)
    self.config = config
    self.metadata = dict(config=config.to_dict(),
                         model=model_signature(config),
                         class_names=list(class_names))
    self.latest = _latest_manager(self.workdir, config)
    self.best = _best_manager(self.workdir, config)

  def _args(self, state, **extra):
    metadata = dict(self.metadata, **extra)
    return ocp.args.Composite(**{STATE: ocp.args.StandardSave(state),
                                 METADATA: ocp.args.JsonSave(metadata)})

  def save_latest(self, step: int, state, *, force: bool = False, **extra) -> bool:
    """Saves if the policy (interval, preemption) or `force` says so."""
    return self.latest.save(step, args=self._args(state, step=step, **extra),
                            force=force)

  def save_best(self, step: int, state, metrics: dict, **extra) -> bool:
    scalars = {k: float(v) for k, v in metrics.items()}
    return self.best.save(step, args=self._args(state, step=step, **extra),
                          metrics=scalars, force=True)

  def reached_preemption(self, step: int) -> bool:
    return self.latest.reached_preemption(step)

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()

  # Restoring.

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def best_step(self) -> int | None:
    return self.best.best_step()

  def read_metadata(self, manager: ocp.CheckpointManager, step: int) -> dict:
    restored = manager.restore(step, args=ocp.args.Composite(
        **{METADATA: ocp.args.JsonRestore()}))
    return dict(restored[METADATA])

  def restore(self, manager: ocp.CheckpointManager, step: int,
              abstract_state: Any) -> tuple[Any, dict]:
    """Restores `step` into the shapes and shardings of `abstract_state`, after
    checking that the saved model is the configured one."""
    metadata = self.read_metadata(manager, step)
    saved, wanted = metadata.get('model', {}), model_signature(self.config)
    diffs = [f'{k}: checkpoint {saved.get(k)!r}, config {wanted[k]!r}'
             for k in wanted if k in saved and saved[k] != wanted[k]]
    if diffs:
      raise CheckpointMismatchError(
          f'the checkpoint at {manager.directory}/{step} does not fit the '
          f'configured model ({"; ".join(diffs)}): use the config it was trained '
          'with, or another --workdir.')
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          **{STATE: ocp.args.StandardRestore(target)}))
    except ValueError as error:
      raise CheckpointMismatchError(
          f'the checkpoint at {manager.directory}/{step} does not fit the model: '
          f'{str(error).splitlines()[0]}') from error
    return restored[STATE], metadata
