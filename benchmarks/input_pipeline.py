"""Input pipeline throughput: images/s of the train and eval pipelines on a CPU.

Writes a folder of ImageNet-like JPEGs (500x375, smooth photographic-like
content plus grain, quality 90, ~65 KB each), then times the tf.data train
pipeline (fused decode-and-crop, flip, resize to 224, and the multi-size 180
variant) and the eval pipeline (decode, resize short side to 256, center crop
224) with 1 and 2 tf.data threads, and, as the floor under both, JPEG decoding
alone on one thread (TF with the accurate and the fast IDCT, and PIL, which is
libjpeg-turbo too). Prints one table.

The rows are timed in interleaved rounds (one pass of each per round, medians
reported), so that a load change on a shared machine hits them all. A pass is
timed from its second batch to its end: the throughput of a running pipeline.
Opening the iterator and taking its first batch is a cost per epoch, not per
image, and is reported on its own ("open + 1st batch"). Figures per row:
images/s (wall clock); images per CPU-second of this process (all its threads),
the per-core throughput, which other processes on the machine disturb far less
than the wall clock; and that as a fraction of decoding alone ("/ decode"),
which even a slower host (a busy neighbour VM) barely moves.

--baseline FILE times another version of sppnet_jax/classification/input_pipeline.py in the
same rounds, e.g. the last commit's:
  git show HEAD:sppnet_jax/classification/input_pipeline.py > /tmp/before.py

  python benchmarks/input_pipeline.py [--num_images 512] [--threads 1,2]
      [--rounds 5] [--baseline /tmp/before.py]
"""

import argparse
import importlib.util
import io
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from sppnet_jax.classification import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from sppnet_jax.classification.config import base_config  # pylint: disable=g-import-not-at-top,wrong-import-position


def photo_like(rng, h=375, w=500):
  """Smooth colour fields at several scales plus grain: JPEG-size realistic."""
  image = np.zeros((h, w, 3), np.float32)
  for cells, amplitude in ((3, 70.0), (12, 35.0), (48, 18.0)):
    ch, cw = cells, max(1, cells * w // h)
    field = rng.normal(0, 1, size=(ch, cw, 3)).astype(np.float32)
    layer = np.stack([
        np.asarray(Image.fromarray(field[..., c]).resize((w, h),
                                                         Image.BICUBIC))
        for c in range(3)], -1)
    image += amplitude * layer
  image += rng.normal(0, 9, size=(h, w, 3)).astype(np.float32)
  image += rng.uniform(60, 190, size=3).astype(np.float32)
  return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def write_images(root, num_images, num_classes=4):
  rng = np.random.default_rng(0)
  for split in ('train', 'val'):
    for i in range(num_images):
      class_dir = os.path.join(root, split, f'class{i % num_classes}')
      os.makedirs(class_dir, exist_ok=True)
      image = photo_like(rng)
      if rng.uniform() < 0.5:  # portrait and landscape, as in ImageNet
        image = image.transpose(Image.Transpose.ROTATE_90)
      image.save(os.path.join(class_dir, f'{i:05d}.jpg'), quality=90)


def load_module(path):
  """Another version of input_pipeline.py, imported under its own name."""
  spec = importlib.util.spec_from_file_location('baseline_input_pipeline', path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up here
  spec.loader.exec_module(module)
  return module


def timed(run):
  """(images/s, images per CPU-second) of one call of `run`, which returns the
  number of images it processed."""
  wall, cpu = time.perf_counter(), time.process_time()
  count = run()
  return (count / (time.perf_counter() - wall),
          count / max(time.process_time() - cpu, 1e-9))


def counter(dataset):
  """A call that runs the rest of a pass over `dataset` and returns its image
  count. Opening the iterator and its first batch happen here, untimed: their
  CPU seconds are kept as `run.opening`. Opening costs 0.1-0.16 s of CPU
  (tf.data rewrites and instantiates the dataset graph), once an epoch and, in
  training, on the lookahead thread: a 512-image pass would count it as 10-20%
  of its time, an ImageNet epoch as nothing. The iterator outlives the call, so
  that its teardown is not timed either (tf.data now and then waits ~0.6 s for
  its autotuning thread then)."""
  cpu = time.process_time()
  iterator = dataset.as_numpy_iterator()
  next(iterator)

  def run():
    return sum(len(batch['label']) for batch in iterator)

  run.opening = time.process_time() - cpu
  return run


def pipeline_rows(module, code, root, threads, batch, steps):
  """(name, threads, code, prepare) of the train and eval pipelines of
  `module`; prepare(warmup) builds the dataset (outside the timed part) and
  returns the call to time."""
  config = base_config()
  config.dataset = 'imagefolder'
  config.data_dir = root
  config.train_sizes = (224, 180)
  config.data_threads = threads
  rows = []
  for name, size in (('train 224', 224), ('train 180', 180)):
    prepare = (lambda warmup, s=size: counter(module.train_dataset(
        config, epoch=1 if warmup else 0, image_size=s, local_batch_size=batch,
        steps=2 if warmup else steps)))
    rows.append((name, threads, code, prepare))

  def prepare_eval(warmup):
    ds = module.eval_dataset(config, local_batch_size=batch)
    return counter(ds.take(2) if warmup else ds)

  rows.append(('eval 256->224', threads, code, prepare_eval))
  return rows


def decode_rows(root, num_images):
  """JPEG decoding alone, on one thread, of the same files held in memory."""
  paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(
      os.path.join(root, 'train')) for f in fs)[:num_images]
  blobs = []
  for path in paths:
    with open(path, 'rb') as f:
      blobs.append(f.read())
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1

  def tf_decode(dct_method):
    decode = lambda data: {'label': tf.shape(tf.io.decode_jpeg(
        data, channels=3, dct_method=dct_method))[0]}
    ds = (tf.data.Dataset.from_tensor_slices(blobs).map(decode).batch(64)
          .with_options(options))
    return lambda warmup: counter(ds.take(1) if warmup else ds)

  def pil_decode(warmup):
    def run():
      for data in blobs[:8] if warmup else blobs:
        np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
      return 8 if warmup else len(blobs)
    return run

  return [('decode: TF, accurate IDCT', 1, 'floor',
           tf_decode('INTEGER_ACCURATE')),
          ('decode: TF, default IDCT', 1, 'floor', tf_decode('')),
          ('decode: PIL', 1, 'floor', pil_decode)]


def run_rows(rows, rounds):
  """[(images/s, images/CPU-s, opening CPU-s) per round] of every row, rows
  interleaved."""
  for _, _, _, prepare in rows:  # warm-up: trace functions, fill caches
    prepare(True)()
  results = [[] for _ in rows]
  for _ in range(rounds):
    for result, (_, _, _, prepare) in zip(results, rows):
      run = prepare(False)
      result.append(timed(run) + (getattr(run, 'opening', 0.0),))
  return results


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--num_images', type=int, default=512,
                      help='JPEGs per split')
  parser.add_argument('--threads', default='1,2',
                      help='comma-separated tf.data thread counts')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--rounds', type=int, default=5,
                      help='timed passes of every row (interleaved)')
  parser.add_argument('--baseline', default='',
                      help='another input_pipeline.py to time alongside')
  parser.add_argument('--no_decode', action='store_true',
                      help='leave out the decode-only rows')
  parser.add_argument('--dir', default='', help='reuse/keep images here')
  args = parser.parse_args()

  root = args.dir or tempfile.mkdtemp(prefix='sppnet_bench_')
  if not os.path.isdir(os.path.join(root, 'val')):
    print(f'Writing {2 * args.num_images} JPEGs to {root} ...', flush=True)
    write_images(root, args.num_images)
  sizes = [os.path.getsize(os.path.join(d, f))
           for d, _, fs in os.walk(root) for f in fs]
  codes = [('this', input_pipeline)]
  if args.baseline:
    codes.append(('baseline', load_module(args.baseline)))
  steps = args.num_images // args.batch_size
  rows = [] if args.no_decode else decode_rows(root, args.num_images)
  for threads in (int(t) for t in args.threads.split(',')):
    for code, module in codes:
      rows += pipeline_rows(module, code, root, threads, args.batch_size, steps)
  results = run_rows(rows, args.rounds)

  medians = {(name, threads, code): np.median(np.array(result), axis=0)
             for (name, threads, code, _), result in zip(rows, results)}
  # Per CPU-second as a fraction of decoding alone: barely moved by the load.
  decode = medians.get(('decode: TF, accurate IDCT', 1, 'floor'))
  header = ['pipeline', 'code', 'threads', 'images/s', 'images/CPU-s',
            'open + 1st batch, CPU s']
  header += ['/ decode'] if decode is not None else []
  header += ['vs baseline'] if args.baseline else []
  lines = []
  for (name, threads, code), (rate, per_cpu, opening) in medians.items():
    line = [name, code, str(threads), f'{rate:.1f}', f'{per_cpu:.1f}',
            f'{opening:.3f}']
    if decode is not None:
      line.append(f'{per_cpu / decode[1]:.2f}')
    if args.baseline:
      base = medians.get((name, threads, 'baseline'))
      line.append(f'{per_cpu / base[1]:.2f}x' if code == 'this' else '')
    lines.append(line)
  widths = [max(len(h), *(len(line[i]) for line in lines))
            for i, h in enumerate(header)]
  print()
  print(f'{args.num_images} JPEGs per split, 500x375 / 375x500, mean '
        f'{np.mean(sizes) / 1024:.0f} KiB; batch {args.batch_size}; '
        f'{os.cpu_count()} CPU cores; medians of {args.rounds} interleaved '
        'rounds; each pass timed from its second batch.')
  for i, cells in enumerate([header] + lines):
    print('| ' + ' | '.join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w)
                            in enumerate(zip(cells, widths))) + ' |')
    if i == 0:
      print('|' + '|'.join('-' * (w + 2) if j < 2 else '-' * (w + 1) + ':'
                           for j, w in enumerate(widths)) + '|')

if __name__ == '__main__':
  main()
