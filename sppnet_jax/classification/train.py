"""The training loop: the run's set-up, its steps and batches, and the loop.

The train step (steps.py) is compiled ahead of time exactly once per training
size (the set of sizes is known from the config), with the state donated and the
batch sharded over the mesh's data axis; calling it never triggers another
compilation. The loop logs, saves (latest and best), evaluates, and stops
cleanly on SIGTERM or a preemption notice.
"""

import dataclasses
import functools
import itertools
import math
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import periodic_actions
from jax.experimental import multihost_utils

from sppnet_jax.classification import evaluate, input_pipeline, warm_start
from sppnet_jax.classification.config import resolve_config
from sppnet_jax.classification.model import create_model
from sppnet_jax.classification.state import initial_state
from sppnet_jax.classification.steps import make_train_step
from sppnet_jax.core import checkpoints, lookahead, metric_output, optim, parallel
from sppnet_jax.core.preemption import StopRequest
from sppnet_jax.core.train_loop import LoopSkeleton, PeriodicValidation
from sppnet_jax.core.train_state import TrainState
from sppnet_jax.errors import ConfigError


_IMAGES_TO_SHOW = 4


@dataclasses.dataclass
class Run:
  """Everything the loop and the eval mode share about one configured run."""
  config: ml_collections.ConfigDict
  source: Any  # the opened data source (see core.data.sources)
  info: input_pipeline.DatasetInfo
  mesh: Any
  model: Any
  steps_per_epoch: int
  total_steps: int
  schedule: Any
  state: TrainState
  state_sharding: Any


def setup(config: ml_collections.ConfigDict) -> Run:
  """Resolves the config against the data, builds the mesh, model and state.
  Reads the data's listing or metadata; writes nothing."""
  source = input_pipeline.open_source(config)
  info = input_pipeline.get_dataset_info(config, source)
  config = resolve_config(config, info)
  mesh = parallel.create_mesh()
  parallel.local_batch_size(config.batch_size)
  steps_per_epoch = info.num_train_examples // config.batch_size
  if steps_per_epoch < 1:
    raise ConfigError(
        f'the training split has {info.num_train_examples} examples, fewer than '
        f'one batch of {config.batch_size}: lower --config.batch_size.')
  total_steps = (config.num_train_steps if config.num_train_steps > 0 else
                 int(math.ceil(config.num_epochs * steps_per_epoch)))
  model = create_model(config)
  schedule = optim.learning_rate_schedule(config, steps_per_epoch, total_steps)
  state, state_sharding = initial_state(config, model, schedule, mesh)
  return Run(config, source, info, mesh, model, steps_per_epoch, total_steps,
             schedule, state, state_sharding)


def compile_train_steps(run: Run) -> dict[int, Any]:
  """One ahead-of-time compilation of the train step per training size."""
  config, mesh = run.config, run.mesh
  step = make_train_step(run.model, run.schedule, seed=config.seed,
                         label_smoothing=config.label_smoothing, mesh=mesh,
                         state_sharding=run.state_sharding)
  local_batch = parallel.local_batch_size(config.batch_size)
  compiled = {}
  for size in sorted(set(config.train_sizes), reverse=True):
    local = {'image': np.zeros((local_batch, size, size, 3), np.uint8),
             'label': np.zeros((local_batch,), np.int32)}
    start = time.perf_counter()
    compiled[size] = step.lower(run.state, parallel.global_batch_spec(local, mesh)
                                ).compile()
    logging.info('Compiled the train step for %dx%d inputs in %.1f s.', size, size,
                 time.perf_counter() - start)
  return compiled


def train_size(config, epoch: int) -> int:
  """The input size of an epoch under the 'epoch' schedule (the paper's)."""
  sizes = tuple(config.train_sizes)
  return sizes[epoch % len(sizes)]


def epoch_parts(run: Run, first_step: int,
                end_step: int | None = None) -> list[lookahead.Part]:
  """The training batches of this process for the steps first_step..end_step-1
  (default: to the end of training), one part per epoch touched."""
  config = run.config
  end_step = run.total_steps if end_step is None else min(end_step, run.total_steps)
  local_batch = parallel.local_batch_size(config.batch_size)
  parts = []
  for epoch in range(first_step // run.steps_per_epoch,
                     -(-end_step // run.steps_per_epoch)):
    start = epoch * run.steps_per_epoch
    skip, stop = max(first_step - start, 0), min(run.steps_per_epoch, end_step - start)
    sizes = (train_size(config, epoch) if config.size_schedule == 'epoch' else
             tuple(config.train_sizes))
    dataset = functools.partial(
        input_pipeline.train_dataset, config, epoch=epoch, image_size=sizes,
        local_batch_size=local_batch,
        steps=min(run.steps_per_epoch, run.total_steps - start),
        skip_batches=skip, process_index=jax.process_index(),
        process_count=jax.process_count(), source=run.source)
    parts.append(lookahead.Part(
        name=f'the input pipeline of epoch {epoch}',
        open=lambda dataset=dataset, n=stop - skip: itertools.islice(
            dataset().as_numpy_iterator(), n),
        length=stop - skip))
  return parts


def train_batches(run: Run, first_step: int, end_step: int | None = None):
  """`epoch_parts` chained, each epoch's pipeline opened while the previous
  epoch still runs (see `lookahead`)."""
  return lookahead.chain_ahead(epoch_parts(run, first_step, end_step))


def _is_eval_step(config, step: int, steps_per_epoch: int, total_steps: int) -> bool:
  if step == total_steps:
    return True
  if config.eval_every_steps > 0:
    return step % config.eval_every_steps == 0
  return step % steps_per_epoch == 0


# The end of the error a non-finite training loss raises (before the state of
# that step is saved, so that the latest checkpoint is the last good one).
_DIVERGENCE_HINT = (
    'the run diverged; lower --config.learning_rate or raise '
    '--config.warmup_epochs, then rerun (training resumes from the last good '
    'checkpoint).')


class _SkippedTrainImages:
  """Unreadable training images skipped so far in the run, over all processes
  (decoded ahead of the step included); kept in the checkpoints' data position
  so that a resumed run goes on counting."""

  def __init__(self, before: int = 0):
    self.before = before
    self._at_start = input_pipeline.num_skipped_images('train')

  def total(self) -> int:
    """All processes must call it together (at the same step)."""
    mine = input_pipeline.num_skipped_images('train') - self._at_start
    if jax.process_count() > 1:
      mine = int(np.sum(multihost_utils.process_allgather(np.int64(mine))))
    return self.before + mine


def _write_train_metrics(writer, step: int, values: dict, seconds: float,
                         steps: int, batch_size: int, skipped: int) -> dict:
  """Writes the train scalars of one report and returns them."""
  scalars = {f'train_{k}': float(v) for k, v in values.items()}
  scalars['train_images_per_sec'] = steps * batch_size / max(seconds, 1e-9)
  scalars['train_skipped_images'] = skipped
  writer.write_scalars(step, scalars)
  return scalars


def _log_evaluation(step: int, run, eval_metrics: dict, train_step: int,
                    train: dict) -> None:
  """The console's line per evaluation: validation metrics, and those of the
  last training report (step `train_step`) when there is one."""
  line = (f'step {step}/{run.total_steps} (epoch {step / run.steps_per_epoch:.1f}):'
          f' validation top-1 {100 * eval_metrics["top1"]:.2f}%, top-5 '
          f'{100 * eval_metrics["top5"]:.2f}%, loss {eval_metrics["loss"]:.4f}')
  metric_output.log_validation_line(line, train_step, train, prefix='train_',
                                    unit='images')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from the latest checkpoint in `workdir` if there is one),
  evaluates periodically, and returns the final evaluation metrics."""
  saved = warm_start.source_config(config, workdir)  # Fails before the data.
  input_pipeline.prepare_data(config)
  run = setup(config)
  config = run.config
  is_main = jax.process_index() == 0
  writer = metric_output.open_writer(workdir, is_main=is_main)
  store = checkpoints.Checkpoints(workdir, config, run.info.class_names)
  state, start_step, skipped_before = run.state, 0, 0
  if store.latest_step() is not None:
    start_step = store.latest_step()
    state, metadata = store.restore(store.latest, start_step, state)
    changes = checkpoints.config_changes(metadata.get('config', {}), config)
    if changes and not config.allow_config_change:
      raise ConfigError(
          f'{workdir} holds a run with another config ({"; ".join(changes)}): use '
          'another --workdir, or resume with the changes anyway with '
          '--config.allow_config_change=True.')
    if changes:
      logging.warning('Resuming with a changed config: %s.', '; '.join(changes))
    logging.info('Resumed from %s at step %d.', store.latest.directory, start_step)
    skipped_before = metadata.get('data_position', {}).get('skipped_images', 0)
  else:
    if saved is not None:
      state = warm_start.start_from(saved, state)
    writer.write_hparams({k: v if isinstance(v, (int, float, str, bool)) else str(v)
                          for k, v in config.to_dict().items()})

  steps = compile_train_steps(run)
  evaluation = evaluate.CenterEvaluation(run)
  parallel.sync_processes('compiled')
  hooks = []
  if is_main:
    hooks.append(periodic_actions.ReportProgress(num_train_steps=run.total_steps,
                                                 writer=writer))
    if config.profile_steps > 0:  # A trace for TensorBoard's profiler tab.
      hooks.append(periodic_actions.Profile(
          logdir=workdir, num_profile_steps=config.profile_steps,
          first_profile=start_step + config.profile_first_step,
          profile_duration_ms=None))
  logging.info('Training %s on %s: %d steps of %d images (%d per epoch), sizes %s.',
               config.model, config.dataset, run.total_steps, config.batch_size,
               run.steps_per_epoch, tuple(config.train_sizes))

  stop = StopRequest()
  try:
    eval_metrics = _loop(run, state, start_step, store, writer, hooks, steps,
                         evaluation, stop, _SkippedTrainImages(skipped_before))
  finally:
    stop.restore()
    store.wait()
    store.close()
    writer.flush()
  return eval_metrics


def _loop(run, state, step, store, writer, hooks, steps, evaluation, stop,
          skipped):
  """Steps from `step` to the end: logs, saves, evaluates; returns the last
  evaluation's metrics."""
  config, mesh = run.config, run.mesh
  first_step = step
  last_log, last_log_step = time.perf_counter(), step
  last_train = {}  # The last train report's scalars, for the console.
  loop = LoopSkeleton(store, stop, total_steps=run.total_steps,
                      log_every_steps=config.log_every_steps,
                      divergence_hint=_DIVERGENCE_HINT)

  validation = PeriodicValidation(
      evaluation,
      lambda step: _is_eval_step(config, step, run.steps_per_epoch,
                                 run.total_steps),
      store, writer, prefix='eval_', best_keys=('top1', 'top5', 'loss'),
      log=lambda step, metrics, train_step, train: _log_evaluation(
          step, run, metrics, train_step, train))
  eval_metrics = validation.catch_up(step, state)
  for batch in parallel.prefetch_to_mesh(train_batches(run, step), mesh):
    if step == first_step and jax.process_index() == 0:
      # What the network sees after augmentation, once per run.
      # (From a local shard: the global batch spans other hosts' devices.)
      local_images = batch['image'].addressable_data(0)[:_IMAGES_TO_SHOW]
      writer.write_images(step, {'train_augmented': np.asarray(local_images)})
    state, sums = steps[batch['image'].shape[1]](state, batch)
    step += 1
    for hook in hooks:
      hook(step)
    events = loop.after_step(step, sums)
    saving = events.final or store.latest.should_save(step)
    if events.log or saving:  # A save checks the loss too, without a report.
      values = loop.values(step)
      skipped_images = skipped.total()
    if events.log:
      now = time.perf_counter()
      last_train = _write_train_metrics(
          writer, step, values, now - last_log, step - last_log_step,
          config.batch_size, skipped_images)
      writer.flush()  # A crash loses nothing that was reported.
      loop.reset()
      last_log, last_log_step = now, step
    if saving:
      start = time.perf_counter()
      position = dict(zip(('epoch', 'batch_in_epoch'),
                          divmod(step, run.steps_per_epoch)),
                      skipped_images=skipped_images)
      if store.save_latest(step, state, force=events.final,
                           data_position=position):
        pause_ms = 1e3 * (time.perf_counter() - start)  # Until the save is async.
        writer.write_scalars(step, {'checkpoint_pause_ms': pause_ms})
    loop.stop_if_preempted(step, events)
    if validation.due(step):
      eval_metrics = validation(step, state, last_log_step, last_train)
  if not eval_metrics:  # Resumed at the end: score the final state again.
    eval_metrics = evaluation(state.params)
  return eval_metrics
