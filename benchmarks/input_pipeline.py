"""Input pipeline throughput: images/s of the train and eval pipelines on a CPU.

Writes a folder of ImageNet-like JPEGs (500x375, smooth photographic-like
content plus grain, quality 90, ~100 KB each), then times the tf.data train
pipeline (fused decode-and-crop, flip, resize to 224, and the multi-size 180
variant) and the eval pipeline (decode, resize short side to 256, centre crop
224) with 1 and 2 tf.data threads. Prints one table.

  python benchmarks/input_pipeline.py [--num_images 512] [--threads 1,2]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default as default_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from sppnet_jax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position


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
  sizes = []
  for split in ('train', 'val'):
    for i in range(num_images):
      class_dir = os.path.join(root, split, f'class{i % num_classes}')
      os.makedirs(class_dir, exist_ok=True)
      path = os.path.join(class_dir, f'{i:05d}.jpg')
      image = photo_like(rng)
      if rng.uniform() < 0.5:  # portrait and landscape, as in ImageNet
        image = image.transpose(Image.Transpose.ROTATE_90)
      image.save(path, quality=90)
      sizes.append(os.path.getsize(path))
  return float(np.mean(sizes))


def time_dataset(make, num_images):
  """Images/s over one pass (after a warm-up of a few batches)."""
  for _ in make(warmup=True).as_numpy_iterator():
    pass
  dataset = make(warmup=False)  # built outside the timed part
  start = time.perf_counter()
  count = 0
  for batch in dataset.as_numpy_iterator():
    count += len(batch['label'])
  elapsed = time.perf_counter() - start
  del num_images
  return count / elapsed


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num_images', type=int, default=512,
                      help='JPEGs per split')
  parser.add_argument('--threads', default='1,2',
                      help='comma-separated tf.data thread counts')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--dir', default='', help='reuse/keep images here')
  args = parser.parse_args()

  root = args.dir or tempfile.mkdtemp(prefix='sppnet_bench_')
  if not os.path.isdir(os.path.join(root, 'val')):
    print(f'Writing {2 * args.num_images} JPEGs to {root} ...', flush=True)
    mean_size = write_images(root, args.num_images)
  else:
    mean_size = float(np.mean([
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(root) for f in fs]))
  batch = args.batch_size
  steps = args.num_images // batch
  rows = []
  for threads in (int(t) for t in args.threads.split(',')):
    config = default_config.get_config()
    config.dataset = 'imagefolder'
    config.data_dir = root
    config.train_sizes = (224, 180)
    config.data_threads = threads
    for name, image_size in (('train 224', 224), ('train 180', 180)):
      rate = time_dataset(
          lambda warmup, s=image_size, c=config: input_pipeline.train_dataset(
              c, epoch=1 if warmup else 0, image_size=s,
              local_batch_size=batch, steps=2 if warmup else steps),
          args.num_images)
      rows.append((name, threads, rate))

    def make_eval(warmup, c=config):
      ds = input_pipeline.eval_dataset(c, local_batch_size=batch)
      return ds.take(2) if warmup else ds

    rows.append(('eval 256->224', threads, time_dataset(make_eval,
                                                         args.num_images)))

  print()
  print(f'{args.num_images} JPEGs per split, 500x375 / 375x500, mean '
        f'{mean_size / 1024:.0f} KiB; batch {batch}; {os.cpu_count()} CPU '
        'cores.')
  print(f'| {"pipeline":<14} | {"threads":>7} | {"images/s":>9} |')
  print(f'|{"-" * 16}|{"-" * 8}:|{"-" * 10}:|')
  for name, threads, rate in rows:
    print(f'| {name:<14} | {threads:>7} | {rate:>9.1f} |')


if __name__ == '__main__':
  main()
