"""Selective-search proposals: images/s per core, and boxes per image.

Draws --images photo-like 500x375 scenes (no download): smooth light-and-shade
and colour fields at several scales, 40..120 small clutter shapes, then 4..12
objects (ellipses, rotated rectangles, polygons), each with its own colour,
shading, fine texture and sometimes stripes, and sensor grain over all. Then
fills a fresh `ProposalStore` with `compute_proposals` for the R-CNN fast
settings (`RCNN_FAST`) and OpenCV's fast preset (`OPENCV_FAST`), with 1 worker
process and with one per core, and prints one table. For scale, the first row
is OpenCV's own `switchToSelectiveSearchFast()` as one `process()` call in this
process (unranked, unfiltered), against which `OPENCV_FAST` shows what
`selective_search` adds: one search per colour space and k, the ranking, the
side filter (module docstring of `detection.proposals`).

Wall times include starting the worker processes ('spawn' + imports), measured
on their own and printed above the table; "per core" divides by the workers
used. "CPU s/image" is the CPU time of this process and its workers (start-up
included) per image: rows run one after another, and unlike the wall clock it
barely moves when other load on the machine comes and goes. These scenes
segment into fewer regions than most photos, so real VOC images are slower
(1.4-6 s per image per core with R-CNN's fast mode, measured on this
project's CPUs).

  python benchmarks/proposals.py [--images 24] [--workers 1,0]  # 0: all cores
"""

import argparse
import os
import resource
import tempfile
import time

import cv2
import numpy as np

from scenes import scene
from sppnet_jax.detection.proposals.job import compute_proposals
from sppnet_jax.detection.proposals.selective_search import (OPENCV_FAST,
                                                             RCNN_FAST)
from sppnet_jax.detection.proposals.store import ProposalStore


def cpu_seconds() -> float:
  """CPU time of this process and its finished children (the workers, once
  their pool has shut down): per image, a figure that other load on the
  machine barely moves, unlike the wall clock."""
  total = 0.0
  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
    usage = resource.getrusage(who)
    total += usage.ru_utime + usage.ru_stime
  return total


def opencv_process_row(images):
  """Seconds and mean boxes of OpenCV's fast mode, one process() per image."""
  segmentation = cv2.ximgproc.segmentation
  counts = []
  start = time.perf_counter()
  for image in images:
    search = segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(image[..., ::-1]))
    search.switchToSelectiveSearchFast()
    counts.append(len(search.process()))
  return time.perf_counter() - start, float(np.mean(counts))


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--images', type=int, default=24,
                      help='500x375 scenes per row')
  parser.add_argument('--workers', default='1,0',
                      help='comma-separated worker counts (0: one per core)')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  cores = os.cpu_count() or 1
  workers = [int(n) or cores for n in args.workers.split(',')]
  rng = np.random.default_rng(args.seed)
  images = [scene(rng) for _ in range(args.images)]
  examples = [(f'{i:06d}', image) for i, image in enumerate(images)]

  with tempfile.TemporaryDirectory(prefix='sppnet_proposals_') as root:
    tiny = [('tiny', np.zeros((24, 24, 3), np.uint8))]
    startup = compute_proposals(tiny, ProposalStore(os.path.join(root, 's')),
                                RCNN_FAST, num_workers=1).seconds
    cv2.setNumThreads(1)  # the in-process row on one core, as a worker
    cpu = cpu_seconds()
    seconds, boxes = opencv_process_row(images)
    rows = [('OpenCV switchToSelectiveSearchFast, one process()', 1, seconds,
             cpu_seconds() - cpu, boxes, '-')]
    for name, settings in (('RCNN_FAST (k 50, 100)', RCNN_FAST),
                           ('OPENCV_FAST (k 150, 300, 450)', OPENCV_FAST)):
      for count in workers:
        store = ProposalStore(os.path.join(root, f'{name[:4]}{count}'))
        cpu = cpu_seconds()
        stats = compute_proposals(examples, store, settings,
                                  num_workers=count, log_every=10**9)
        cpu = cpu_seconds() - cpu
        capped = sum(len(store.load(i)) == settings.max_boxes
                     for i, _ in examples)
        rows.append((name, count, stats.seconds, cpu,
                     stats.boxes / args.images, f'{capped}/{args.images}'))

  header = ['settings', 'workers', 'images/s', 'images/s per core',
            'CPU s/image', 'boxes/image', 'at max_boxes']
  lines = [[name, str(count), f'{args.images / s:.2f}',
            f'{args.images / s / count:.2f}', f'{cpu / args.images:.2f}',
            f'{boxes:.0f}', capped]
           for name, count, s, cpu, boxes, capped in rows]
  widths = [max(len(h), *(len(line[i]) for line in lines))
            for i, h in enumerate(header)]
  print()
  print(f'{args.images} synthetic 500x375 scenes; {cores} CPU cores; worker '
        f'start-up (spawn + imports, in the wall times) {startup:.1f} s; '
        f'min_side {RCNN_FAST.min_side:g}, max_boxes {RCNN_FAST.max_boxes}.')
  for i, cells in enumerate([header] + lines):
    print('| ' + ' | '.join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w)
                            in enumerate(zip(cells, widths))) + ' |')
    if i == 0:
      print('|' + '|'.join('-' * (w + 2) if j == 0 else '-' * (w + 1) + ':'
                           for j, w in enumerate(widths)) + '|')


if __name__ == '__main__':
  main()
