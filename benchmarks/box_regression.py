"""Box regression: the primal against the dual ridge solve, at VOC's sizes.

One class of --dim-d features (12,800 = pooled conv5 of ZF-5; random, ReLU'd,
float32, as the pooled features are) and N samples for each N of --samples:
`box_regression.fit` with solver='dual' (an N x N kernel) and 'primal' (a
(D+1) x (D+1) Gram matrix), both Cholesky in float64, wall seconds (median of
--rounds) and the largest difference between the two's predicted deltas on
the training rows (the same minimiser, so rounding only). 'auto' picks the
smaller matrix: the dual below N = D + 1, the primal above. VOC 2007 trainval
has a few hundred to a few thousand samples per class at IoU >= 0.5, where
the dual wins. Measured on 2 CPU cores, D = 12,800: N = 500: dual 1.7 s,
primal 39 s; N = 2,000: 3.7 s / 42 s; N = 6,000: 14 s / 46 s (the primal is
dominated by the 12,801^2 Cholesky, the dual grows as N^2 D); the two agree
to 1e-16 in the deltas.

  python benchmarks/box_regression.py [--samples 500,2000,6000] [--dim 12800]
"""

import argparse
import statistics
import time

import numpy as np

from sppnet_jax.detection.training import box_regression


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--samples', default='500,2000,6000',
                      help='comma-separated N per class')
  parser.add_argument('--dim', type=int, default=12800)
  parser.add_argument('--rounds', type=int, default=1)
  parser.add_argument('--solvers', default='dual,primal')
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  solvers = args.solvers.split(',')
  print(f'D = {args.dim}; seconds per class (median of {args.rounds})')
  print(f'{"N":>7} ' + ' '.join(f'{s:>9}' for s in solvers)
        + '  max |dual - primal| (deltas)')
  for n in (int(v) for v in args.samples.split(',')):
    features = np.maximum(rng.normal(size=(n, args.dim)), 0).astype(np.float32)
    deltas = rng.normal(0, 0.2, (n, 4))
    classes = np.zeros(n, np.int64)
    times, preds = [], []
    for solver in solvers:
      runs = []
      for _ in range(args.rounds):
        start = time.perf_counter()
        model = box_regression.fit(features, deltas, classes, 1,
                                   solver=solver)
        runs.append(time.perf_counter() - start)
      times.append(statistics.median(runs))
      preds.append(model(features, classes))
    diff = (f'{np.abs(preds[0] - preds[1]).max():.1e}' if len(preds) == 2
            else '-')
    print(f'{n:>7} ' + ' '.join(f'{t:>9.2f}' for t in times) + f'  {diff}')


if __name__ == '__main__':
  main()
