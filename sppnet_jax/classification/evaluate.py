"""Evaluation on the validation split: every example counted exactly once.

Batches are padded to the batch size and carry a mask, so the last partial batch
is scored, never dropped; the metrics average over masked-in examples only.

`evaluate` scores the center crop (the protocol of evaluation during training)
with global batches on the whole mesh; `CenterEvaluation` does it again and
again in a training run with one dataset and one compiled step.
`evaluate_views` scores the other test protocols (`config.eval.protocol`, see
eval_views.py): each process scores its own shard on its own devices, sums each
example's softmax over its views, and the processes' totals are added at the end.

Every protocol reports `skipped_images`: the images of the split that could not
be read (the split's size minus the examples scored, over all processes), when
the whole split is scored.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from sppnet_jax.classification import eval_views, input_pipeline
from sppnet_jax.classification.metrics import EvalMetrics
from sppnet_jax.classification.steps import make_eval_step
from sppnet_jax.core import parallel, projection
from sppnet_jax.core.roi_spp import roi_spatial_pyramid_pool
from sppnet_jax.core.zf5 import normalize_images
from sppnet_jax.errors import DataError


def center_dataset(config, source):
  """This process's padded, masked center-crop batches (`steps_per_eval` of
  them if set); iterate it once per evaluation."""
  local_batch = parallel.local_batch_size(config.eval_batch_size, 'eval_batch_size')
  dataset = input_pipeline.eval_dataset(
      config, local_batch_size=local_batch, process_index=jax.process_index(),
      process_count=jax.process_count(), source=source)
  if config.steps_per_eval > 0:
    dataset = dataset.take(config.steps_per_eval)
  return dataset


def _with_skipped(metrics: dict, config, split_size: int) -> dict:
  """Adds `skipped_images` where the whole split was scored."""
  if config.steps_per_eval <= 0:
    metrics['skipped_images'] = int(split_size - metrics['num_examples'])
  return metrics


def evaluate(eval_step, params, config, mesh, *, source=None,
             dataset=None) -> dict:
  """Scores the whole validation split (or `steps_per_eval` batches) with
  `dataset` (default: `center_dataset` of `source`, opened from the config)."""
  source = source or input_pipeline.open_source(config)
  if dataset is None:
    dataset = center_dataset(config, source)
  totals = None
  for batch in parallel.prefetch_to_mesh(dataset.as_numpy_iterator(), mesh):
    batch_metrics = EvalMetrics.from_sums(eval_step(params, batch))
    totals = batch_metrics if totals is None else totals.merge(batch_metrics)
  if totals is None:
    raise DataError('the validation split is empty: check --config.eval_split '
                    'and --config.data_dir.')
  metrics = {k: float(v) if k != 'num_examples' else v
             for k, v in jax.device_get(totals.compute()).items()}
  return _with_skipped(metrics, config, source.num_eval_examples)


class CenterEvaluation:
  """`evaluate` of a training run: the eval step compiled once, the dataset
  built once (with `cache_eval`, its decoded batches kept after the first pass)."""

  def __init__(self, run):
    self._run = run
    config = run.config
    local_batch = parallel.local_batch_size(config.eval_batch_size,
                                            'eval_batch_size')
    size = config.eval_size
    local = {'image': np.zeros((local_batch, size, size, 3), np.uint8),
             'label': np.zeros((local_batch,), np.int32),
             'mask': np.zeros((local_batch,), bool)}
    # Compiled now, ahead of time, with the train steps (not at the first
    # evaluation, when other processes may already wait in a collective).
    self._step = make_eval_step(run.model, run.mesh, run.state_sharding.params).lower(
        run.state.params, parallel.global_batch_spec(local, run.mesh)).compile()
    self._dataset = center_dataset(config, run.source)

  def __call__(self, params) -> dict:
    run = self._run
    return evaluate(self._step, params, run.config, run.mesh, source=run.source,
                    dataset=self._dataset)


def evaluate_protocol(eval_step, model, params, config, mesh, *,
                      source=None, view_step=None) -> dict:
  """Scores the protocol `config.eval.protocol` selects."""
  if config.eval.protocol == 'center':
    metrics = evaluate(eval_step, params, config, mesh, source=source)
  else:
    metrics = evaluate_views(model, params, config, source=source,
                             view_step=view_step)
  metrics['protocol'] = config.eval.protocol
  return metrics


def views_per_example(spec: eval_views.ViewSpec, views_shape) -> int:
  """The views a view step sums per example of a [B, V, H, W, 3] batch."""
  if spec.feature_map:
    height, width = views_shape[2:4]
    return views_shape[1] * len(eval_views.feature_map_windows(
        height, width, spec.crop, spec.full_image_window))
  return views_shape[1]


def feature_map_cells(spec: eval_views.ViewSpec, height: int, width: int,
                      map_height: int, map_width: int,
                      architecture: str) -> np.ndarray:
  """(V, 4) conv5 cell boxes of the feature_map_views windows of a height x
  width image whose conv5 map (of the network `architecture`) is map_height x
  map_width."""
  windows = np.array(eval_views.feature_map_windows(height, width, spec.crop,
                                                    spec.full_image_window),
                     np.float32)
  return projection.project_boxes(windows, map_height, map_width, spec.projection,
                                  architecture)


def make_view_step(model, mesh: Mesh, spec: eval_views.ViewSpec | None = None):
  """A jitted step: (params, views uint8 [B, V, H, W, 3]) -> the softmax summed
  over each example's views [B, classes], float32; one compilation per views
  shape. With a feature-map spec, each of the V images runs to conv5 once and
  its windows (`feature_map_cells`, fixed by the shape) are pooled from it."""

  def view_eval_step(params, views):
    batch, num = views.shape[:2]
    images = normalize_images(views.reshape((batch * num,) + views.shape[2:]),
                              model.dtype)
    if spec is not None and spec.feature_map:
      variables = {'params': params}
      conv5 = model.apply(variables, images, method='features')
      cells = feature_map_cells(spec, *views.shape[2:4], *conv5.shape[1:3],
                                model.architecture)
      per_image = cells.shape[0]
      pooled = roi_spatial_pyramid_pool(
          conv5, np.tile(cells, (batch * num, 1)), tuple(model.spp_levels),
          image_index=np.repeat(np.arange(batch * num), per_image),
          max_box_cells=tuple(int(n) for n in (cells[:, 2:] - cells[:, :2]).max(0)))
      logits = model.apply(variables, pooled, train=False, method='head')
      num *= per_image
    else:
      logits = model.apply({'params': params}, images, train=False)
    probabilities = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return probabilities.reshape(batch, num, -1).sum(axis=1)

  return jax.jit(view_eval_step,
                 in_shardings=(parallel.replicated_sharding(mesh),
                               parallel.batch_sharding(mesh)),
                 out_shardings=parallel.replicated_sharding(mesh))


class _ViewSums:
  """Per example of this process's shard: the summed softmax, the number of
  views summed, and the label; grows with the positions seen."""

  def __init__(self, num_classes: int):
    self.probabilities = np.zeros((0, num_classes), np.float64)
    self.views = np.zeros((0,), np.int64)
    self.labels = np.zeros((0,), np.int64)

  def add(self, summed, batch, views_per_example: int):
    mask = batch['mask']
    positions = batch['pos'][mask]
    if positions.size and positions.max() >= len(self.views):
      grow = max(2 * len(self.views), int(positions.max()) + 1) - len(self.views)
      self.probabilities = np.pad(self.probabilities, ((0, grow), (0, 0)))
      self.views = np.pad(self.views, (0, grow))
      self.labels = np.pad(self.labels, (0, grow))
    np.add.at(self.probabilities, positions, np.asarray(summed)[mask])
    np.add.at(self.views, positions, views_per_example)
    self.labels[positions] = batch['label'][mask]

  def totals(self) -> np.ndarray:
    """[top-1 correct, top-5 correct, summed loss, examples] of the averaged
    softmax: the loss is -log of the label's averaged probability."""
    seen = self.views > 0
    probabilities = self.probabilities[seen] / self.views[seen, None]
    labels = self.labels[seen]
    label_probability = probabilities[np.arange(len(labels)), labels]
    # Rank of the label = the classes strictly more probable than it.
    rank = (probabilities > label_probability[:, None]).sum(axis=1)
    loss = -np.log(np.maximum(label_probability, np.finfo(np.float64).tiny))
    return np.array([(rank < 1).sum(), (rank < 5).sum(), loss.sum(), len(labels)],
                    np.float64)


def local_mesh() -> Mesh:
  """This process's devices on one data axis (the view protocols' mesh)."""
  return Mesh(np.array(jax.local_devices()), (parallel.DATA_AXIS,),
              axis_types=(jax.sharding.AxisType.Auto,))


def evaluate_views(model, params, config, *, source=None, view_step=None) -> dict:
  """Scores the view protocols (ten_view, full_image, multi_scale, or center
  crops through the same path) on this process's shard, with this process's
  devices; all processes must call it (the totals are summed across them).
  `view_step` (`make_view_step(model, local_mesh(), view_spec(config))`) may
  be passed to reuse its compilations across calls."""
  source = source or input_pipeline.open_source(config)
  devices = jax.local_devices()
  mesh = local_mesh()
  # The replicated parameters' local copy, on this process's devices only.
  params = jax.device_put(
      jax.tree.map(lambda x: x.addressable_data(0), params),
      parallel.replicated_sharding(mesh))
  spec = eval_views.view_spec(config)
  step = view_step or make_view_step(model, mesh, spec)
  local_batch = parallel.local_batch_size(config.eval_batch_size, 'eval_batch_size')
  dataset = eval_views.views_dataset(
      config, local_batch_size=local_batch, devices=len(devices),
      process_index=jax.process_index(), process_count=jax.process_count(),
      source=source)
  sums = _ViewSums(config.num_classes)
  pending = []  # one step in flight while the next batch is prepared
  for batch in dataset.as_numpy_iterator():
    views = batch.pop('views')
    count = views_per_example(spec, views.shape)
    views = jax.device_put(views, parallel.batch_sharding(mesh))
    pending.append((step(params, views), batch, count))
    if len(pending) > 1:
      sums.add(*pending.pop(0))
  for summed, batch, count in pending:
    sums.add(summed, batch, count)
  totals = sums.totals()
  if jax.process_count() > 1:
    parallel.sync_processes('view_totals')  # Shards take unequal times.
    totals = np.asarray(multihost_utils.process_allgather(totals)).sum(axis=0)
  top1, top5, loss, count = totals
  if count == 0:
    raise DataError('the validation split is empty: check --config.eval_split '
                    'and --config.data_dir.')
  return _with_skipped({'loss': float(loss / count), 'top1': float(top1 / count),
                        'top5': float(top5 / count), 'num_examples': int(count)},
                       config, source.num_eval_examples)
