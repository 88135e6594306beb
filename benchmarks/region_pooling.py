"""Region pooling on a shared conv5 map: its cost, and what it saves over crops.

Part (a), the paper's detection cost per image: the full-width SPP-net (random
init, float32, 21 classes as for VOC detection) on one random image of short
side --scale (aspect 4:3, 688 x 917 by default) with --boxes random proposal-like
pixel boxes (sides 20..scale, log-uniform), projected onto its conv5 map with
`projection.project_boxes`. Each stage is jitted on its own and timed: conv5
(`features`), the pooling of every box (`roi_spatial_pyramid_pool`), and the
head on the pooled vectors (`head`: fc6 and fc7, which the paper times, plus
fc8, 0.1% of the head's FLOPs); then the three as one jitted function, and a
plain fp32 matrix product of fc6's shape, the machine's matmul FLOP/s. Medians of
--rounds interleaved rounds (one call of each per round, after a warm-up), so
that a load change hits every row; GFLOP/s from analytic FLOPs (2 per MAC).

Part (b), multi-view testing on the trained run (paper 3.1.5): the
`feature_map_views` protocol (conv5 once per image, scale and mirror, the
windows pooled from it) against the same windows cut out of the same resized
images and each run through the whole network as a crop. The crop baseline
decodes and resizes exactly as the protocol (`eval_views.views_at_scale`), cuts
the windows of `eval_views.feature_map_windows` from the image and its mirror,
and runs those crops of one (image, scale) as one batch, one image in flight
while the next is prepared; the softmax is averaged over all views. Each row
runs twice: compilations counted on the first pass, images/s timed on the
second (input pipeline included). GFLOP per image is analytic, from the shapes
both rows see: what conv5 once per image saves, against what the row achieves.

  python main.py --workdir=runs/tiny                 # train the default run
  python benchmarks/region_pooling.py                # both parts
  python benchmarks/region_pooling.py --parts=a --scale=688 --boxes=2000 --rounds=5
  python benchmarks/region_pooling.py --parts=b --images=100 --workdir=runs/tiny
"""

import copy
import dataclasses
import os
import statistics
import sys
import time

from absl import app, flags
from ml_collections import config_flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

config_flags.DEFINE_config_file('config', 'configs/classification/tiny.py',
                                'Recipe of the run (part b).', lock_config=True)
flags.DEFINE_string('workdir', 'runs/tiny', 'The trained run (part b).')
flags.DEFINE_list('parts', ['a', 'b'], 'Which tables: a (detection cost per '
                  'image), b (feature-map views against crops).')
flags.DEFINE_integer('scale', 688, 'Part a: the image short side.')
flags.DEFINE_integer('boxes', 2000, 'Part a: boxes per image.')
flags.DEFINE_integer('rounds', 5, 'Part a: timed rounds.')
flags.DEFINE_integer('images', 0, 'Part b: the first N validation images (0: all).')
flags.DEFINE_bool('one_by_one', True, 'Part b: also the windows as crops one at '
                  'a time (slow: use --images=100 or so).')
FLAGS = flags.FLAGS


def head_macs(params) -> int:
  """Multiply-accumulates of fc6-fc8 for one pooled vector: their kernels' sizes."""
  return sum(params[name]['kernel'].size for name in ('fc6', 'fc7', 'fc8'))


# ----------------------------------------------------------------------------
# Part (a): conv5, pooling and fc of one image with many boxes.

def random_boxes(rng, count: int, height: int, width: int, smallest: int = 20):
  """(count, 4) float pixel boxes (y0, x0, y1, x1) inside the image, sides
  log-uniform in [smallest, short side], like region proposals."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  largest = min(height, width)
  sides = np.exp(rng.uniform(np.log(smallest), np.log(largest), (count, 2)))
  y0 = rng.uniform(0, height - sides[:, 0])
  x0 = rng.uniform(0, width - sides[:, 1])
  return np.stack([y0, x0, y0 + sides[:, 0], x0 + sides[:, 1]], 1).astype(np.float32)


def detection_cost(scale: int, num_boxes: int, rounds: int) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sppnet_jax import SPPNet, normalize_images, roi_spatial_pyramid_pool  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core import architectures, projection, zf5  # pylint: disable=g-import-not-at-top

  model = SPPNet(num_classes=21)
  height, width = scale, round(scale * 4 / 3)
  levels = tuple(model.spp_levels)
  params = jax.jit(model.init, static_argnames='train')(
      jax.random.key(0), np.zeros((1, 224, 224, 3), np.float32), train=False)['params']
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (1, height, width, 3), np.uint8)
  map_h, map_w = (architectures.conv5_size(height),
                  architectures.conv5_size(width))
  boxes = projection.project_boxes(random_boxes(rng, num_boxes, height, width),
                                   map_h, map_w)

  def conv5(params, image):
    return model.apply({'params': params}, normalize_images(image, model.dtype),
                       method='features')

  def pool(conv5_map, boxes):
    return roi_spatial_pyramid_pool(conv5_map[0], boxes, levels)

  def head(params, vectors):
    return model.apply({'params': params}, vectors, train=False, method='head')

  def pipeline(params, image, boxes):
    return head(params, pool(conv5(params, image), boxes))

  conv5_map = jax.jit(conv5)(params, image)
  vectors = jax.jit(pool)(conv5_map, boxes)
  fc_in, fc_out = vectors.shape[1], model.fc_dim
  a = jax.device_put(rng.standard_normal((num_boxes, fc_in), np.float32))
  b = jax.device_put(rng.standard_normal((fc_in, fc_out), np.float32))

  fc_macs = head_macs(params)  # per vector; conv5's are the rest of a forward pass
  conv_macs = zf5.forward_macs(model, height, width) - fc_macs
  rows = {  # name -> (what, function, arguments, FLOPs or None)
      'conv5': (f'image {height}x{width} -> {map_h}x{map_w}x{conv5_map.shape[-1]}',
                conv5, (params, image), 2.0 * conv_macs),
      'region pooling': (f'{num_boxes} boxes, levels {levels} -> {fc_in}-d',
                         pool, (conv5_map, boxes), None),
      'fc6-fc8': (f'{num_boxes} x {fc_in} -> {fc_out} -> {fc_out} -> '
                  f'{model.num_classes}', head, (params, vectors),
                  2.0 * fc_macs * num_boxes),
      'whole pipeline': ('the three above as one jitted function', pipeline,
                         (params, image, boxes),
                         2.0 * (conv_macs + fc_macs * num_boxes)),
      'plain matmul': (f'fp32 ({num_boxes} x {fc_in}) @ ({fc_in} x {fc_out})',
                       lambda a, b: a @ b, (a, b), 2.0 * num_boxes * fc_in * fc_out),
  }
  compiled = {name: jax.jit(fn).lower(*args).compile()
              for name, (_, fn, args, _) in rows.items()}
  for name, fn in compiled.items():  # warm-up
    jax.block_until_ready(fn(*rows[name][2]))
  times = {name: [] for name in rows}
  for _ in range(rounds):
    for name, fn in compiled.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(*rows[name][2]))
      times[name].append(time.perf_counter() - start)
  median = {name: statistics.median(t) for name, t in times.items()}
  parts = ('conv5', 'region pooling', 'fc6-fc8')
  total = sum(median[name] for name in parts)

  print(f'\n(a) one image at scale {scale} with {num_boxes} boxes: full-width '
        f'SPP-net, float32, {jax.device_count()} {jax.default_backend()} '
        f'device(s), {os.cpu_count()} CPU cores; medians of {rounds} '
        'interleaved rounds\n')
  print('| stage | work | median ms | share of conv5+pool+fc % | GFLOP | GFLOP/s |')
  print('|---|---|---:|---:|---:|---:|')

  def row(name, what, seconds, flops):
    share = f'{100 * seconds / total:.1f}' if name in parts + ('sum of parts',) else ''
    gflop = f'{flops / 1e9:.1f}' if flops else ''
    rate = f'{flops / seconds / 1e9:.1f}' if flops else ''
    print(f'| {name} | {what} | {1e3 * seconds:,.1f} | {share} | {gflop} | {rate} |')

  for name, (what, _, _, flops) in rows.items():
    if name == 'whole pipeline':
      row('sum of parts', 'conv5 + pooling + fc6-fc8, jitted separately', total,
          rows[name][3])
    row(name, what, median[name], flops)


# ----------------------------------------------------------------------------
# Part (b): feature_map_views against the same windows as crops.

def first_images(source, count: int):
  """The source with its validation split cut to the first `count` images
  (all for count <= 0); image folders only."""
  from sppnet_jax.core.data import sources  # pylint: disable=g-import-not-at-top
  if count <= 0 or count >= source.num_eval_examples:
    return source
  if not isinstance(source, sources.ImageFolderSource):
    sys.exit('error: --images needs an image-folder data set; use --images=0.')
  subset = copy.copy(source)
  subset.eval = dataclasses.replace(source.eval,
                                    rel_paths=source.eval.rel_paths[:count],
                                    labels=source.eval.labels[:count])
  return subset


def crop_baseline(model, params, config, source, one_by_one: bool = False) -> dict:
  """The feature_map_views windows as crops through the whole network: the
  softmax averaged over every view (see the module doc). Returns top-1, the
  examples, the views, and the analytic FLOPs of the crops ('flops') and of
  feature_map_views on the same images ('map_flops': conv5 of each resized
  image and mirror, fc6-fc8 of each window; padding rows not counted)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sppnet_jax import normalize_images  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification import eval_views  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core import zf5  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.data import image_ops  # pylint: disable=g-import-not-at-top

  spec = eval_views.view_spec(config)
  fc_macs = head_macs(params)
  macs = {'crops': 0, 'map': 0}
  antialias = bool(config.get('resize_antialias', False))

  @jax.jit
  def crop_eval_step(params, crops):
    logits = model.apply({'params': params}, normalize_images(crops, model.dtype),
                         train=False)
    return jax.nn.softmax(logits.astype(np.float32), axis=-1).sum(axis=0)

  def crops_of(data):
    """Per scale: uint8 [V, h, w, 3], the windows (crop x crop, at most the
    image) of the resized image and of its mirror."""
    image = image_ops.decode_record(data, source.is_path)
    batches = []
    for short_side in spec.scales:
      views = eval_views.views_at_scale(image, short_side, spec, antialias).numpy()
      windows = eval_views.feature_map_windows(*views.shape[1:3], spec.crop,
                                               spec.full_image_window)
      macs['map'] += len(views) * (zf5.forward_macs(model, *views.shape[1:3])
                                   + (len(windows) - 1) * fc_macs)
      macs['crops'] += len(views) * sum(
          zf5.forward_macs(model, y1 - y0, x1 - x0) for y0, x0, y1, x1 in windows)
      batches.append(np.stack([view[y0:y1, x0:x1] for view in views
                               for y0, x0, y1, x1 in windows]))
    return batches

  records, _ = source.eval_records(process_index=0, process_count=1)
  correct = examples = views = 0
  pending = None  # (summed softmax per scale, label): one image in flight

  def score(summed, label):
    probabilities = sum(np.asarray(s, np.float64) for s in summed)
    return int(np.argmax(probabilities) == label)

  for record in records.as_numpy_iterator():
    if record['sentinel']:
      continue
    try:
      batches = crops_of(record['data'])
    except tf.errors.InvalidArgumentError:
      continue  # unreadable, skipped as the protocol skips it
    if one_by_one:  # each window alone, as R-CNN runs its windows
      summed = [sum(crop_eval_step(params, crop[None]) for crop in batch)
                for batch in batches]
    else:
      summed = [crop_eval_step(params, batch) for batch in batches]
    if pending is not None:
      correct += score(*pending)
    pending = (summed, record['label'])
    examples += 1
    views += sum(len(batch) for batch in batches)
  if pending is not None:
    correct += score(*pending)
  return {'top1': correct / max(examples, 1), 'num_examples': examples,
          'views': views, 'flops': 2.0 * macs['crops'],
          'map_flops': 2.0 * macs['map']}


def views_against_crops(num_images: int) -> None:
  from sppnet_jax.classification import eval_views, evaluate  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification.config import validate_config  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification.restore import restore  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core import compile_count  # pylint: disable=g-import-not-at-top

  restored = restore(FLAGS.config, FLAGS.workdir, with_data=True)
  run, params, model = restored.run, restored.params, restored.model
  config = run.config.copy_and_resolve_references()
  config.eval.protocol = 'feature_map_views'
  validate_config(config)
  source = first_images(run.source, num_images)
  view_step = evaluate.make_view_step(model, evaluate.local_mesh(),
                                      eval_views.view_spec(config))
  protocols = {
      'feature_map_views': (
          lambda: evaluate.evaluate_views(model, params, config, source=source,
                                          view_step=view_step), 'view_eval_step'),
      'crops through the network': (
          lambda: crop_baseline(model, params, config, source), 'crop_eval_step'),
  }
  if FLAGS.one_by_one:
    protocols['crops one by one'] = (
        lambda: crop_baseline(model, params, config, source, one_by_one=True),
        'crop_eval_step')
  rows = {}
  for name, (score, step_name) in protocols.items():
    with compile_count.compilations() as compiled:
      score()
    start = time.perf_counter()
    metrics = score()
    seconds = time.perf_counter() - start
    rows[name] = (metrics, seconds, sum(n == step_name for n in compiled))
    print(f'{name}: top-1 {100 * metrics["top1"]:.2f}%, '
          f'{metrics["num_examples"] / seconds:.1f} images/s', flush=True)

  crops = rows['crops through the network'][0]
  images = crops['num_examples']
  views = crops['views'] / images  # the same windows in both rows
  flops = {'feature_map_views': crops['map_flops'] / images,
           'crops through the network': crops['flops'] / images,
           'crops one by one': crops['flops'] / images}
  speed = {name: m['num_examples'] / s for name, (m, s, _) in rows.items()}
  print(f'\n(b) checkpoint {restored.path} (step {restored.step}), {images} '
        f'validation images, scales {tuple(config.eval.scales)}, crop '
        f'{config.eval_size}, image + mirror; "crops through the network" runs '
        'the views of one (image, scale) as one batch, "crops one by one" each '
        'view alone; GFLOP analytic (2 per MAC)\n')
  print('| protocol | views per image | GFLOP per image | images/s | GFLOP/s | '
        'speed vs crops | top-1 % | examples | compilations |')
  print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for name, (metrics, _, compilations) in rows.items():
    print(f'| {name} | {views:.1f} | {flops[name] / 1e9:.2f} | {speed[name]:.1f} | '
          f'{flops[name] * speed[name] / 1e9:.0f} | '
          f'{speed[name] / speed["crops through the network"]:.2f}x | '
          f'{100 * metrics["top1"]:.2f} | {metrics["num_examples"]} | '
          f'{compilations} |')


def main(argv):
  del argv
  from sppnet_jax import runtime  # pylint: disable=g-import-not-at-top
  runtime.prefer_fast_cpu_convolutions()
  runtime.keep_tensorflow_off_accelerators()
  unknown = set(FLAGS.parts) - {'a', 'b'}
  if unknown:
    sys.exit(f'error: unknown --parts {sorted(unknown)}: use a, b.')
  if 'a' in FLAGS.parts:
    detection_cost(FLAGS.scale, FLAGS.boxes, FLAGS.rounds)
  if 'b' in FLAGS.parts:
    views_against_crops(FLAGS.images)


if __name__ == '__main__':
  app.run(main)
