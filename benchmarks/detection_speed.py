"""Detection speed: SPP-net against R-CNN on the same network, proposals and
machine (the paper's Table 10), in one run.

Every method sees the same weights (the full-width SPP-net, 21 outputs as for
VOC; randomly initialised: time does not depend on the values, and no trained
full-width detector fits in this repository), the same images and the same
proposals:

* images: --images photo-like 500x375 scenes (`scenes.py`, as the proposals
  benchmark draws them);
* proposals: selective search (`detection.proposals`) with R-CNN's fast
  settings plus k 150 and 300 and a 10-pixel smallest side, so that these
  simpler-than-VOC scenes give the ~2,000 boxes of a VOC image; the best
  --boxes are kept. Its time per image (one core) is printed on its own row:
  neither method's figures include it, as in the paper.

The methods, per image:

* R-CNN: each proposal grown about its centre so that 16 of the 224 output
  pixels on each side are context (R-CNN's `context_pad`), warped to 224 x 224
  (bilinear, the mean colour outside the image), and run through the whole
  network in batches of --rcnn_batch: conv1-conv5, the pyramid pooling of the
  13 x 13 map, fc6-fc8;
* SPP-net, 1 scale (688) and 5 scales (480, 576, 688, 864, 1200): the
  library's test path exactly as `--mode=eval` and `--mode=detect` run it:
  `MultiScaleConv5` (conv5 of the resized image once per scale), then
  `Detector.detect_from_maps` (each box pooled at its scale, fc6-fc8, softmax
  scores, per-class NMS);
* SPP-net ... SVD: the same with fc6 and fc7 as their low-rank factors at
  --svd_ranks (768 and 512, the README's choice; Fast R-CNN's were 1024 and
  256; `detection.inference.svd`, as `--config.test.svd_ranks` runs them:
  either method's factors have the same shapes, hence the same time).

Columns: the stages timed one after another with the device synchronised
between them (conv: conv1-conv5 including the resize or warp; pooling: region
SPP; fc: fc6-fc8), and the total: for R-CNN the sum, for SPP-net the end-to-end
call timed on its own (so "other" = total - stages is the host-side work:
copies, scoring, NMS). Each row is timed --repeats times on each image, the
rows interleaved (every pass runs every row on an image before the next
image), and each figure is the median over images and repeats: a shared
machine's stalls hit single calls of a second, and the median keeps them out
of the table. A warm-up pass compiles every shape first. MACs per image are
analytic (`zf5.forward_macs`): conv layers of each input, fc6-fc8 per box;
GFLOP/s = 2 x MACs / time. A plain fp32 matrix product of fc6's shape is
timed in every round: the machine's matmul rate, to which SPP-net's achieved
rate is compared.

  python benchmarks/detection_speed.py               # 3 images, 2,000 boxes
  python benchmarks/detection_speed.py --quick       # ~1 minute smoke run
  python benchmarks/detection_speed.py --dtype=bfloat16   # on a GPU
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

RCNN_INPUT = 224  # the network's training input, to which R-CNN warps
RCNN_CONTEXT = 16  # output pixels of context on each side (R-CNN's context_pad)
ONE_SCALE = (688,)
FIVE_SCALES = (480, 576, 688, 864, 1200)
SVD_RANKS = (768, 512)  # the ranks recommended in the README (rank table)
STAGES = ('conv', 'pooling', 'fc')


def proposal_settings(max_boxes: int):
  """R-CNN's fast mode with two more thresholds k and 10-pixel boxes: about
  2,000 boxes on the drawn scenes, as on a VOC image."""
  from sppnet_jax.detection.proposals.selective_search import SelectiveSearchSettings  # pylint: disable=g-import-not-at-top
  return SelectiveSearchSettings(ks=(50, 100, 150, 300), min_side=10,
                                 max_boxes=max_boxes)


# ----------------------------------------------------------------------------
# R-CNN: warped windows through the whole network.

def context_boxes(boxes: np.ndarray, size: int = RCNN_INPUT,
                  context: int = RCNN_CONTEXT) -> np.ndarray:
  """(R, 4) float (y0, x0, y1, x1) boxes grown about their centres so that,
  warped to size x size, the original box fills the inner size - 2 * context
  pixels: R-CNN's `rcnn_im_crop` with padding (it may leave the image)."""
  boxes = np.asarray(boxes, np.float32)
  grow = size / (size - 2.0 * context)
  centre = (boxes[:, :2] + boxes[:, 2:]) / 2
  half = (boxes[:, 2:] - boxes[:, :2]) / 2 * grow
  return np.concatenate([centre - half, centre + half], 1)


def warp_windows(image, windows, size: int = RCNN_INPUT):
  """Bilinear samples of the (R, 4) windows of an (H, W, C) float image, each
  to size x size; output pixel i of a window spans [y0 + i h / size, y0 +
  (i + 1) h / size) and is sampled at its centre (half-pixel centres), and
  samples outside the image are 0 (the mean colour of a normalised image).
  Separable: rows first, then columns, two taps each."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  image = jnp.asarray(image)

  def taps(low, high, length):
    position = low + (jnp.arange(size) + 0.5) * (high - low) / size - 0.5
    floor = jnp.floor(position)
    frac = position - floor
    first = floor.astype(jnp.int32)
    index = jnp.stack([first, first + 1], -1)  # (size, 2)
    weight = jnp.stack([1 - frac, frac], -1)
    weight = jnp.where((index >= 0) & (index < length), weight, 0.0)
    return jnp.clip(index, 0, length - 1), weight

  def warp_one(window):
    rows, row_weight = taps(window[0], window[2], image.shape[0])
    cols, col_weight = taps(window[1], window[3], image.shape[1])
    by_rows = jnp.einsum('ij,ijwc->iwc', row_weight, image[rows])
    return jnp.einsum('kj,ikjc->ikc', col_weight, by_rows[:, cols])

  return jax.vmap(warp_one)(windows)


class RCNN:
  """R-CNN's test-time features: every window warped and run through the
  whole network; conv, pooling and fc jitted separately to time them."""

  def __init__(self, model, params, batch: int):
    import jax  # pylint: disable=g-import-not-at-top
    from sppnet_jax import normalize_images, spatial_pyramid_pool  # pylint: disable=g-import-not-at-top
    self.batch = batch
    self.params = params

    def normalise(image):
      return normalize_images(image[None], np.float32)[0]

    def conv(params, image, windows):
      crops = warp_windows(image, windows).astype(model.dtype)
      return model.apply({'params': params}, crops, method='features')

    def pool(conv5):
      return spatial_pyramid_pool(conv5, tuple(model.spp_levels))

    def fc(params, pooled):
      return model.apply({'params': params}, pooled, train=False, method='head')

    self._normalise = jax.jit(normalise)
    self._stages = (jax.jit(conv), jax.jit(pool), jax.jit(fc))

  def __call__(self, image, boxes) -> dict:
    import jax  # pylint: disable=g-import-not-at-top
    conv, pool, fc = self._stages
    times = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    normalised = jax.block_until_ready(self._normalise(image))
    windows = context_boxes(boxes)
    times['conv'] += time.perf_counter() - start
    for first in range(0, len(windows), self.batch):
      chunk = windows[first:first + self.batch]
      chunk = np.pad(chunk, ((0, self.batch - len(chunk)), (0, 0)))
      start = time.perf_counter()
      conv5 = jax.block_until_ready(conv(self.params, normalised, chunk))
      middle = time.perf_counter()
      pooled = jax.block_until_ready(pool(conv5))
      end = time.perf_counter()
      jax.block_until_ready(fc(self.params, pooled))
      times['conv'] += middle - start
      times['pooling'] += end - middle
      times['fc'] += time.perf_counter() - end
    times['total'] = sum(times[s] for s in STAGES)
    return times


# ----------------------------------------------------------------------------
# SPP-net: the library's test path.

class SPPNet:
  """conv5 once per scale, then `Detector.detect_from_maps`."""

  def __init__(self, model, params, scales, batch_boxes: int, svd_ranks=()):
    from sppnet_jax.detection.config import base_config  # pylint: disable=g-import-not-at-top
    from sppnet_jax.detection.inference import head, svd  # pylint: disable=g-import-not-at-top
    from sppnet_jax.detection.inference.detector import Detector  # pylint: disable=g-import-not-at-top
    from sppnet_jax.detection.features.conv5 import MultiScaleConv5  # pylint: disable=g-import-not-at-top
    from sppnet_jax.detection.features.pooling import PoolingSettings  # pylint: disable=g-import-not-at-top
    config = base_config()
    config.detection.scales = tuple(scales)
    self.conv5 = MultiScaleConv5(model, params, scales,
                                 config.detection.size_step)
    self.detector = Detector(
        model, params, PoolingSettings.of(config, model.spp_levels, 224,
                                          model.architecture),
        num_classes=model.num_classes - 1, batch_boxes=batch_boxes,
        svd_factors=svd.factor_head(head.head_params(params), svd_ranks)
        if svd_ranks else None)

  def __call__(self, image, boxes) -> dict:
    import jax  # pylint: disable=g-import-not-at-top
    detector = self.detector
    height, width = image.shape[:2]
    times = {}
    start = time.perf_counter()
    maps = self.conv5(image)
    jax.block_until_ready([m.conv5 for m in maps])
    times['conv'] = time.perf_counter() - start
    start = time.perf_counter()
    groups = jax.block_until_ready(detector.pooled_groups(maps, boxes, height,
                                                          width))
    times['pooling'] = time.perf_counter() - start
    start = time.perf_counter()
    detector.group_outputs(groups, len(boxes), ('logits',))
    times['fc'] = time.perf_counter() - start
    start = time.perf_counter()
    detector.detect_from_maps(self.conv5(image), boxes, height, width)
    times['total'] = time.perf_counter() - start
    return times


# ----------------------------------------------------------------------------

def macs_per_image(model, scales, boxes: int, height: int, width: int,
                   ranks=()) -> dict:
  """{'conv', 'fc'} multiply-accumulates of one image: R-CNN (scales None)
  runs the convolutions on every 224 window; SPP-net once per scale; fc6
  and fc7 at `ranks` when given."""
  from sppnet_jax.core import zf5  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core.data import image_ops  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.config import base_config  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.inference import svd  # pylint: disable=g-import-not-at-top
  whole = svd.head_macs(model.pool5_dim(), model.fc_dim, model.num_classes)
  fc = svd.head_macs(model.pool5_dim(), model.fc_dim, model.num_classes,
                     ranks)
  if scales is None:
    conv = boxes * (zf5.forward_macs(model, RCNN_INPUT) - whole)
  else:
    step = base_config().detection.size_step
    conv = sum(zf5.forward_macs(model, *image_ops.full_image_size(
        height, width, s, step)) - whole for s in scales)
  return {'conv': conv, 'fc': boxes * fc}


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--images', type=int, default=3)
  parser.add_argument('--boxes', type=int, default=2000,
                      help='proposals kept per image (the best ranked)')
  parser.add_argument('--rcnn_batch', type=int, default=50,
                      help='warped windows per R-CNN call')
  parser.add_argument('--batch_boxes', type=int, default=1024,
                      help="SPP-net's regions per fc call (test.batch_boxes)")
  parser.add_argument('--svd_ranks', default=','.join(map(str, SVD_RANKS)),
                      help='fc6,fc7 ranks of the SVD rows')
  parser.add_argument('--repeats', type=int, default=3,
                      help='timed calls of every row on every image')
  parser.add_argument('--dtype', default='float32',
                      choices=('float32', 'bfloat16'))
  parser.add_argument('--quick', action='store_true',
                      help='a smoke run: 1 image, 200 boxes')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  if args.quick:
    args.images, args.boxes, args.repeats = 1, 200, 1
  if min(args.images, args.boxes, args.repeats) < 1:
    parser.error('--images, --boxes and --repeats must be at least 1')
  return args


def main(argv=None):
  args = parse_args(argv)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from scenes import scene  # pylint: disable=g-import-not-at-top
  from sppnet_jax import SPPNet as Network, runtime  # pylint: disable=g-import-not-at-top
  from sppnet_jax.detection.proposals.selective_search import selective_search  # pylint: disable=g-import-not-at-top
  runtime.prefer_fast_cpu_convolutions()
  runtime.keep_tensorflow_off_accelerators()

  rng = np.random.default_rng(args.seed)
  images = [scene(rng) for _ in range(args.images)]
  settings = proposal_settings(args.boxes)
  proposal_seconds, proposals = [], []
  for image in images:
    start = time.perf_counter()
    proposals.append(selective_search(image, settings))
    proposal_seconds.append(time.perf_counter() - start)
  num_boxes = [len(b) for b in proposals]

  model = Network(num_classes=21, dtype=jnp.dtype(args.dtype))
  params = jax.jit(model.init, static_argnames='train')(
      jax.random.key(0), np.zeros((1, RCNN_INPUT, RCNN_INPUT, 3), np.float32),
      train=False)['params']
  ranks = tuple(int(r) for r in args.svd_ranks.split(','))
  methods = {
      'R-CNN (warped windows)': (RCNN(model, params, args.rcnn_batch), None,
                                 ()),
      'SPP-net, 1 scale': (SPPNet(model, params, ONE_SCALE, args.batch_boxes),
                           ONE_SCALE, ()),
      'SPP-net, 5 scales': (SPPNet(model, params, FIVE_SCALES, args.batch_boxes),
                            FIVE_SCALES, ()),
      'SPP-net, 1 scale, SVD': (SPPNet(model, params, ONE_SCALE,
                                       args.batch_boxes, ranks),
                                ONE_SCALE, ranks),
      'SPP-net, 5 scales, SVD': (SPPNet(model, params, FIVE_SCALES,
                                        args.batch_boxes, ranks),
                                 FIVE_SCALES, ranks),
  }
  fc_in, fc_out = model.pool5_dim(), model.fc_dim
  a = jax.device_put(rng.standard_normal((args.boxes, fc_in), np.float32))
  b = jax.device_put(rng.standard_normal((fc_in, fc_out), np.float32))
  matmul = jax.jit(lambda a, b: a @ b)

  # Warm-up: every shape compiled (R-CNN has one: a batch of windows).
  for method, _, _ in methods.values():
    if isinstance(method, RCNN):
      method(images[0], proposals[0][:args.rcnn_batch])
    else:
      for image, boxes in zip(images, proposals):
        method(image, boxes)
  jax.block_until_ready(matmul(a, b))

  times = {name: [] for name in methods}
  matmul_seconds = []
  for _ in range(args.repeats):
    for image, boxes in zip(images, proposals):  # interleaved: load hits all rows
      for name, (method, _, _) in methods.items():
        times[name].append(method(image, boxes))
        print(f'  {name}: {times[name][-1]["total"]:.2f} s', flush=True)
      start = time.perf_counter()
      jax.block_until_ready(matmul(a, b))
      matmul_seconds.append(time.perf_counter() - start)

  height, width = images[0].shape[:2]
  boxes = int(np.mean(num_boxes))
  matmul_rate = 2.0 * args.boxes * fc_in * fc_out / statistics.median(matmul_seconds)
  median = {name: {key: statistics.median(t[key] for t in rows)
                   for key in STAGES + ('total',)}
            for name, rows in times.items()}
  rcnn_total = median['R-CNN (warped windows)']['total']
  rcnn_macs = macs_per_image(model, None, boxes, height, width)

  print(f'\nDetection speed per image: {len(images)} images {width}x{height}, '
        f'{boxes} proposals each (mean; selective search {1e3 * statistics.median(proposal_seconds):,.0f} ms '
        f'per image on one core, in no row), full-width ZF-5 SPP-net '
        f'({args.dtype}), {jax.device_count()} {jax.default_backend()} '
        f'device(s), {os.cpu_count()} CPU cores; medians over images x '
        f'{args.repeats} repeats; the fp32 '
        f'matmul ({args.boxes}x{fc_in} @ {fc_in}x{fc_out}) ran at '
        f'{matmul_rate / 1e9:,.0f} GFLOP/s in the same run\n')
  print('| method | conv ms | pooling ms | fc ms | other ms | total ms | '
        'images/s | speed-up | GMACs conv + fc | MACs ratio | GFLOP/s | '
        'of matmul % | pooling % |')
  print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for name, (_, scales, svd_ranks) in methods.items():
    m = median[name]
    macs = macs_per_image(model, scales, boxes, height, width, svd_ranks)
    stage_sum = sum(m[s] for s in STAGES)
    flops = 2.0 * (macs['conv'] + macs['fc'])
    rate = flops / stage_sum
    print(f'| {name} | {1e3 * m["conv"]:,.0f} | {1e3 * m["pooling"]:,.1f} | '
          f'{1e3 * m["fc"]:,.0f} | {1e3 * (m["total"] - stage_sum):,.0f} | '
          f'{1e3 * m["total"]:,.0f} | {1 / m["total"]:.2f} | '
          f'{rcnn_total / m["total"]:.1f}x | '
          f'{macs["conv"] / 1e9:,.0f} + {macs["fc"] / 1e9:,.0f} | '
          f'{(rcnn_macs["conv"] + rcnn_macs["fc"]) / (macs["conv"] + macs["fc"]):.1f}x | '
          f'{rate / 1e9:,.0f} | {100 * rate / matmul_rate:.0f} | '
          f'{100 * m["pooling"] / stage_sum:.1f} |')


if __name__ == '__main__':
  main()
