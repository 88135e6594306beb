"""Orbax checkpoints: the latest states (resume) and the best states (by the
run's chosen validation metric, `best_metric`: top-1 for classification, mAP
('map') for detection fine-tuning).

Both live in the workdir: `checkpoints/` keeps the latest `keep_latest_checkpoints`
states, saved every `checkpoint_every_steps`, on preemption and at the end;
`best/` keeps the `keep_best_checkpoints` states with the highest `best_metric`.
Each step stores the train state and a JSON record of the config and class names,
so a checkpoint is checked against the model it is restored into.

Training opens both managers with `Checkpoints` (which creates the folders);
everything that only reads (eval mode, export, predict) finds its step with
`find_checkpoint`, which creates nothing and fails at once where there is none.
"""

import dataclasses
import functools
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from sppnet_jax.errors import (CheckpointError, CheckpointNotFoundError,
                               ConfigError)

STATE, METADATA = 'state', 'metadata'
# Fields that decide the shapes of the parameters: a checkpoint only fits a model
# whose fields match.
MODEL_FIELDS = ('model', 'num_classes', 'spp_levels', 'width_multiplier', 'fc_dim',
                'lrn', 'architecture')


# Fields that may change between a run and its resumption without changing what
# is computed (where the data lives, how often to log, save and evaluate).
RESUMABLE_FIELDS = frozenset({
    'data_dir', 'manual_dir', 'log_every_steps', 'checkpoint_every_steps',
    'keep_best_checkpoints', 'keep_latest_checkpoints', 'eval_every_steps',
    'steps_per_eval', 'eval_batch_size', 'data_threads', 'cache_eval',
    'allow_config_change', 'eval',
    # Read only when a run starts from scratch (see classification.warm_start).
    'init_from'})


# Fields added to the config after runs were saved without them, with the
# value such a record means (those runs computed exactly that).
FIELDS_ADDED_LATER = {'architecture': 'zf5', 'trainable_from': 'conv1'}


def config_changes(saved: dict, config, *,
                   resumable=RESUMABLE_FIELDS) -> list[str]:
  """'field: saved -> current' for each field, other than `resumable`, whose
  value differs between `saved` (the record a checkpoint was written with)
  and `config` (a ConfigDict or a dict); tuples and lists compare equal, and a
  field of FIELDS_ADDED_LATER missing from `saved` has its value there."""
  current = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  saved = {**{k: v for k, v in FIELDS_ADDED_LATER.items() if k in current},
           **saved}
  normal = lambda v: list(v) if isinstance(v, (tuple, list)) else v
  return [f'{k}: {normal(saved.get(k))!r} -> {normal(current.get(k))!r}'
          for k in sorted(set(saved) | set(current))
          if k not in resumable and normal(saved.get(k)) != normal(current.get(k))]


def _own_barriers(name: str) -> ocp.options.MultiprocessingOptions:
  """Options that prefix a manager's multi-process barrier names with `name`.
  Orbax names the barrier of its saving flag the same in every manager, so
  without a prefix one manager's background commit of a save and the other's
  next save can meet on one barrier across processes and fail ("Barrier
  ThreadSaveMultiHostValueHolder:set_value_start is already ongoing")."""
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)


def _latest_manager(workdir: str, config) -> ocp.CheckpointManager:
  every = max(int(config.checkpoint_every_steps), 1)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_latest_checkpoints,
      save_decision_policy=policies.AnySavePolicy([
          policies.FixedIntervalPolicy(every),
          policies.PreemptionCheckpointingPolicy(),
      ]),
      create=True, multiprocessing_options=_own_barriers('latest'))
  return ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                               options=options, item_names=(STATE, METADATA))


def _best_by(metric: str, metrics: dict) -> float:
  return metrics[metric]


def _best_manager(workdir: str, config,
                  metric: str = 'top1') -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_best_checkpoints,
      best_fn=functools.partial(_best_by, metric),
      best_mode='max', keep_checkpoints_without_metrics=False, create=True,
      multiprocessing_options=_own_barriers('best'))
  return ocp.CheckpointManager(os.path.join(workdir, 'best'), options=options,
                               item_names=(STATE, METADATA))


def open_directory(path: str, best: bool = False,
                   metric: str = 'top1') -> ocp.CheckpointManager:
  """A read-only manager over a folder of step folders (a workdir's
  `checkpoints/` or `best/`, possibly copied elsewhere); with `best`, it ranks
  the steps by their saved validation `metric`."""
  options = ocp.CheckpointManagerOptions(
      read_only=True, create=False,
      best_fn=functools.partial(_best_by, metric) if best else None,
      best_mode='max')
  return ocp.CheckpointManager(os.path.abspath(path), item_names=(STATE, METADATA),
                               options=options)


@dataclasses.dataclass(frozen=True)
class Selected:
  """One saved step: the manager of its folder, the step, and its path."""
  manager: ocp.CheckpointManager
  step: int

  @property
  def path(self) -> str:
    return os.path.join(str(self.manager.directory), str(self.step))


def _step_folders(folder: str) -> list[int]:
  if not os.path.isdir(folder):
    return []
  return sorted(int(name) for name in os.listdir(folder) if name.isdigit())


def has_latest(workdir: str) -> bool:
  """Whether `workdir` holds a latest checkpoint to resume (file system only)."""
  return bool(_step_folders(os.path.join(os.path.abspath(workdir), 'checkpoints')))


def locate_checkpoint(workdir: str, *, path: str = '',
                      step: int = -1) -> tuple[str, int | None]:
  """(folder of step folders, step) to restore, from the file system alone (no
  JAX, no Orbax, nothing created), so that a wrong --workdir fails at once:
  `path` (a step folder, or a folder of steps: its latest), else `step` of the
  workdir's latest or best checkpoints, else the workdir's best folder (step
  None: the best-ranked step), else its latest. Raises CheckpointNotFoundError,
  naming what was looked for."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if path:
    path = os.path.abspath(os.path.expanduser(path.rstrip('/')))
    if not os.path.isdir(path):
      raise CheckpointNotFoundError(
          f'--config.eval.checkpoint_path={path} does not exist: name a step '
          'folder such as WORKDIR/best/1000.')
    name = os.path.basename(path)
    if name.isdigit():
      return os.path.dirname(path), int(name)
    if not _step_folders(path):
      raise CheckpointNotFoundError(
          f'--config.eval.checkpoint_path={path} holds no step folders: name a '
          'step folder such as WORKDIR/best/1000.')
    return path, _step_folders(path)[-1]
  latest_dir, best_dir = (os.path.join(workdir, name)
                          for name in ('checkpoints', 'best'))
  latest_steps, best_steps = _step_folders(latest_dir), _step_folders(best_dir)
  if not latest_steps and not best_steps:
    raise CheckpointNotFoundError(
        f'no checkpoint in {workdir}: train first with the same --workdir, or '
        'point --workdir (or --config.eval.checkpoint_path) at a trained run.')
  if step >= 0:
    for folder, steps in ((latest_dir, latest_steps), (best_dir, best_steps)):
      if step in steps:
        return folder, step
    raise CheckpointNotFoundError(
        f'no checkpoint of step {step} in {workdir}: saved steps are '
        f'{sorted(set(latest_steps) | set(best_steps))}.')
  if best_steps:
    return best_dir, None
  return latest_dir, latest_steps[-1]


def find_checkpoint(workdir: str, *, path: str = '', step: int = -1) -> Selected:
  """`locate_checkpoint`, opened read-only (the best step ranked by the saved
  validation top-1)."""
  folder, step = locate_checkpoint(workdir, path=path, step=step)
  if step is not None:
    return Selected(open_directory(folder), step)
  best = open_directory(folder, best=True)
  if best.best_step() is not None:
    return Selected(best, best.best_step())
  return Selected(best, best.latest_step())


def model_signature(config) -> dict:
  """The config fields that fix the parameter shapes, JSON-friendly."""
  return {k: list(v) if isinstance(v, (tuple, list)) else v
          for k, v in ((k, config.get(k)) for k in MODEL_FIELDS)}


class Checkpoints:
  """The two managers of a workdir and the metadata written with every save."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict,
               class_names: tuple[str, ...] = (), *, policy=None,
               best_metric: str = 'top1'):
    """`policy`: where checkpoint_every_steps, keep_latest_checkpoints and
    keep_best_checkpoints are read (default: the config itself); the best
    states are those with the highest `best_metric`."""
    self.workdir = os.path.abspath(workdir)
    self.config = config
    self.metadata = dict(config=config.to_dict(),
                         model=model_signature(config),
                         class_names=list(class_names))
    policy = config if policy is None else policy
    self.latest = _latest_manager(self.workdir, policy)
    self.best = _best_manager(self.workdir, policy, best_metric)

  def _args(self, state, **extra):
    metadata = dict(self.metadata, **extra)
    return ocp.args.Composite(**{STATE: ocp.args.StandardSave(state),
                                 METADATA: ocp.args.JsonSave(metadata)})

  def save_latest(self, step: int, state, *, force: bool = False, **extra) -> bool:
    """Saves if the policy (interval, preemption) or `force` says so."""
    return self.latest.save(step, args=self._args(state, step=step, **extra),
                            force=force)

  def save_best(self, step: int, state, metrics: dict, **extra) -> bool:
    # Orbax names its multi-process commit barrier after the step alone, so
    # two managers committing the same step at once collide: let the latest
    # save of this step finish first.
    if jax.process_count() > 1:
      self.latest.wait_until_finished()
    scalars = {k: float(v) for k, v in metrics.items()}
    return self.best.save(step, args=self._args(state, step=step, **extra),
                          metrics=scalars, force=True)

  def evaluated(self, step: int) -> bool:
    """Whether `step` has a best record (its state saved with its validation
    metrics). A resumed step that was due an evaluation and has none was
    stopped between its latest save and its evaluation (a SIGTERM honoured
    after the save, or kill -9): the loop evaluates it before going on, so
    that the best states are an uninterrupted run's. A step evaluated and
    then pruned as not among the best is evaluated again, to the same end."""
    return step in self.best.all_steps()

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

  def restore(self, manager: ocp.CheckpointManager, step: int,
              abstract_state: Any) -> tuple[Any, dict]:
    return restore(manager, step, abstract_state, self.config)

  def resume(self, abstract_state: Any, training_fields: dict,
             what: str) -> tuple[Any, int]:
    """(state, step) of the latest checkpoint, or (`abstract_state`, 0) when
    nothing is saved yet. A run resumes only with the settings it was started
    with: `training_fields` (those that change what it computes, saved with
    every step as `training_fields=`) differing from the saved ones raise a
    one-line ConfigError naming each change, the store closed first."""
    step = self.latest_step()
    if step is None:
      return abstract_state, 0
    state, metadata = self.restore(self.latest, step, abstract_state)
    changes = config_changes(metadata.get('training_fields', {}),
                             training_fields, resumable=())
    if changes:
      self.close()
      raise ConfigError(
          f'{self.workdir} holds {what} with other settings '
          f'({"; ".join(changes)}): use another --workdir, or the settings '
          'it was started with.')
    return state, step

  def restore_final(self, abstract_state: Any, *, use_best: bool,
                    what: str) -> tuple[Any, int]:
    """(state, step) that test time uses: the best record's when `use_best`
    and there is one, else the latest step's. Raises ConfigError, naming
    `what` was looked for, when nothing is saved."""
    best = self.best_step() if use_best else None
    manager, step = ((self.best, best) if best is not None
                     else (self.latest, self.latest_step()))
    if step is None:
      raise ConfigError(f'{self.workdir} holds no {what}: run --mode=train '
                        'first.')
    return self.restore(manager, step, abstract_state)[0], step


def saved_config(metadata: dict,
                 fields: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config saved with a step (its `read_metadata`) on top of `fields`,
  today's fields with their defaults: a field added since the save keeps its
  default, one removed is dropped."""

  def known(saved: dict, fields: ml_collections.ConfigDict) -> dict:
    return {k: known(v, fields[k]) if isinstance(v, dict) else v
            for k, v in saved.items() if k in fields}

  fields.update(known(metadata.get('config', {}), fields))
  return fields


def read_metadata(manager: ocp.CheckpointManager, step: int) -> dict:
  """The JSON record saved with a step: config, model signature, class names."""
  restored = manager.restore(step, args=ocp.args.Composite(
      **{METADATA: ocp.args.JsonRestore()}))
  return dict(restored[METADATA])


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any,
            config) -> tuple[Any, dict]:
  """(state, metadata) of `step`, restored into the shapes and shardings of
  `abstract_state`, after checking that the saved model is the configured one."""
  metadata = read_metadata(manager, step)
  saved, wanted = metadata.get('model', {}), model_signature(config)
  diffs = [f'{k}: checkpoint {saved.get(k)!r}, config {wanted[k]!r}'
           for k in wanted if k in saved and saved[k] != wanted[k]]
  if diffs:
    raise CheckpointError(
        f'the checkpoint at {manager.directory}/{step} does not fit the '
        f'configured model ({"; ".join(diffs)}): use the config it was trained '
        'with, or another --workdir.')
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        **{STATE: ocp.args.StandardRestore(target)}))
  except ValueError as error:
    raise CheckpointError(
        f'the checkpoint at {manager.directory}/{step} does not fit the model: '
        f'{str(error).splitlines()[0]}') from error
  return restored[STATE], metadata
