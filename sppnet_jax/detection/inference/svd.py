"""Low-rank fc6 and fc7 for the detector's test time (Fast R-CNN, Girshick
2015, section 3.1): a (D_in, D_out) layer y = x W + b is replaced by two
matrix products, x @ A @ B + c with A (D_in, r) and B (r, D_out), so a region
costs r (D_in + D_out) multiply-accumulates instead of D_in D_out. No
retraining: the factors come from the trained head. Two ways to choose the
rank-r layer (config.test.svd_method):

* 'weights', Fast R-CNN's: the truncated SVD of the kernel, W ~ U_r S_r V_r^T,
  A = U_r S_r, B = V_r^T, c = b: the rank-r kernel nearest W (Frobenius norm),
  whatever the inputs.
* 'responses' (Zhang, Zou, He and Sun, "Efficient and Accurate Approximations
  of Nonlinear Convolutional Networks", CVPR 2015, its linear solution): the
  rank-r layer whose outputs on sampled inputs are nearest the layer's in
  least squares. With m the mean of the responses x W of the samples and P
  the top r principal directions of their covariance, y ~ (y - ybar) P P^T +
  ybar, i.e. A = W P, B = P^T, c = b + m - m P P^T. The samples are regions
  as the detector meets them at test time (proposals of training images,
  `fc6_responses`); fc7's inputs are those of the factored fc6, so fc7's
  factors make up for fc6's error rather than compounding it. At the same
  ranks it loses far less mAP than 'weights' (the README's rank table).

Ranks are given for the full-width head (fc_dim 4096; Fast R-CNN's 1024 for
fc6 and 256 for fc7) and scale with the head's fc_dim, so the same setting
keeps the same fraction of a narrow network's layer (`scaled_ranks`). A rank
at or above min(D_in, D_out) keeps the layer whole (exactly the original).

The factors of one trained head are computed once and stored beside it
(`load_or_factor`): a file per (fine-tuned step, ranks, method and samples),
written atomically.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

import numpy as np

from sppnet_jax.detection import stage_files

FULL_FC_DIM = 4096  # the width the configured ranks refer to
LAYERS = ('fc6', 'fc7')
PARTS = ('first', 'second', 'bias')  # A, B, c of a factored layer in its file


def scaled_ranks(ranks: Sequence[int], fc_dim: int) -> tuple[int, ...]:
  """The ranks of fc6 and fc7 for a head of `fc_dim` (`ranks`: () or two
  positive ranks given for FULL_FC_DIM, as the config checks them; scaled and
  rounded, at least 1); () keeps the layers whole."""
  ranks = tuple(int(r) for r in ranks)
  if not ranks:
    return ()
  return tuple(max(1, round(r * fc_dim / FULL_FC_DIM)) for r in ranks)


def factor(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
  """(D_in, D_out) kernel -> (D_in, r) and (r, D_out) float32 factors whose
  product is the best rank-r approximation (U_r S_r, V_r^T), r = min(rank,
  D_in, D_out); computed in float64."""
  u, s, vt = np.linalg.svd(np.asarray(kernel, np.float64),
                           full_matrices=False)
  r = min(int(rank), len(s))
  return ((u[:, :r] * s[:r]).astype(np.float32),
          np.ascontiguousarray(vt[:r]).astype(np.float32))


def factor_responses(kernel: np.ndarray, bias: np.ndarray,
                     responses: np.ndarray, rank: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """'responses': (D_in, D_out) kernel, (D_out,) bias and (N, D_out)
  responses x @ kernel of N sampled inputs (no bias) -> float32 (A, B, c)
  with x A B + c the rank-r layer (r = min(rank, D_in, D_out)) whose outputs
  on the samples are the least-squares nearest to x W + b: the responses'
  projection on their top r principal directions about their mean;
  computed in float64."""
  kernel = np.asarray(kernel, np.float64)
  responses = np.asarray(responses, np.float64)
  if responses.ndim != 2 or responses.shape[1] != kernel.shape[1] or (
      len(responses) < 2):
    raise ValueError(f'responses of shape {responses.shape} do not fit a '
                     f'kernel of shape {kernel.shape}: give (N >= 2, '
                     f'{kernel.shape[1]}) rows of samples @ kernel.')
  r = min(int(rank), *kernel.shape)
  mean = responses.mean(axis=0)
  centred = responses - mean
  _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
  directions = vectors[:, ::-1][:, :r]  # (D_out, r)
  bias = np.asarray(bias, np.float64) + mean - (mean @ directions) @ directions.T
  return ((kernel @ directions).astype(np.float32),
          np.ascontiguousarray(directions.T).astype(np.float32),
          bias.astype(np.float32))


def factor_head(params: dict, ranks: Sequence[int],
                fc6_responses: np.ndarray | None = None) -> dict:
  """{layer: (A, B, c)} of fc6 and fc7 of the head `params` at `ranks`
  (already scaled): 'weights' when `fc6_responses` is None, else
  'responses' from the (N, D) rows of sampled pool5 @ fc6's kernel (fc7's
  samples: the factored fc6's ReLU outputs on them, times fc7's kernel). A
  layer whose rank keeps it whole is left out (it runs as it is)."""
  factors = {}
  inputs_to_next = None
  for layer, rank in zip(LAYERS, ranks):
    kernel = np.asarray(params[layer]['kernel'])
    bias = np.asarray(params[layer]['bias'])
    whole = rank >= min(kernel.shape)
    if fc6_responses is None:
      if not whole:
        factors[layer] = (*factor(kernel, rank), bias.astype(np.float32))
      continue
    responses = (np.asarray(fc6_responses, np.float64) if layer == 'fc6'
                 else inputs_to_next @ np.asarray(kernel, np.float64))
    if whole:
      outputs = responses + bias
    else:
      first, second, new_bias = factor_responses(kernel, bias, responses, rank)
      factors[layer] = (first, second, new_bias)
      # x A B + c = (x W) P P^T + c: the factored outputs from the responses.
      outputs = (responses @ second.T.astype(np.float64)) @ second + new_bias
    inputs_to_next = np.maximum(outputs, 0)
  return factors


def fc6_responses(region_pool5: Callable, kernel: np.ndarray,
                  images: Iterable, regions_per_image: int,
                  seed: int = 0) -> np.ndarray:
  """(N, D) float32 rows pool5 @ fc6 `kernel` of up to `regions_per_image`
  proposals of each image drawn at random without replacement (`seed`):
  `images` yields (maps, proposals, height, width); `region_pool5(maps,
  boxes, height, width)` gives the boxes' (R, pool5) vectors (the detector's
  pooling)."""
  rng = np.random.default_rng(seed)
  kernel = np.asarray(kernel, np.float32)
  rows = []
  for maps, proposals, height, width in images:
    proposals = np.asarray(proposals, np.float32).reshape(-1, 4)
    if not len(proposals):
      continue
    chosen = rng.choice(len(proposals), min(len(proposals), regions_per_image),
                        replace=False)
    rows.append(np.asarray(region_pool5(maps, proposals[np.sort(chosen)],
                                        height, width), np.float32) @ kernel)
  if not rows:
    raise ValueError('no image with proposals to sample regions from: the '
                     "'responses' SVD needs some; use "
                     "--config.test.svd_method=weights.")
  return np.concatenate(rows)


def head_macs(pool5_dim: int, fc_dim: int, outputs: int,
              ranks: Sequence[int] = ()) -> int:
  """fc6-fc8 multiply-accumulates of one region: each of fc6 and fc7 whole
  (D_in D_out) or at its rank (r (D_in + D_out)) when that rank factors it,
  and fc8 whole."""
  layers = ((pool5_dim, fc_dim), (fc_dim, fc_dim))
  ranks = tuple(ranks) or (None, None)
  return sum(d_in * d_out if r is None or r >= min(d_in, d_out)
             else r * (d_in + d_out)
             for (d_in, d_out), r in zip(layers, ranks)) + fc_dim * outputs


def file_name(ranks: Sequence[int], step: int, samples: str = '') -> str:
  """The factors' file: 'weights' (`samples` '') or 'responses' of the
  samples that `samples` names."""
  method = f'responses-{samples}' if samples else 'weights'
  return f'svd_{method}_fc6-{ranks[0]}_fc7-{ranks[1]}_step-{step}.npz'


def load_or_factor(folder: str, params: dict, ranks: Sequence[int], step: int,
                   *, sample: Callable[[], np.ndarray] | None = None,
                   samples: str = '', write: bool = True) -> dict:
  """`factor_head` of the head of fine-tuned step `step`, read from
  `folder` when it was computed before, else computed (and written when
  `write`: one process writes, every process computes the same).
  'responses' when `sample` is given: it returns the fc6 responses, and is
  called only when the file is missing; `samples` names them in the file
  name (e.g. '200x100': images x regions)."""
  path = os.path.join(folder, file_name(ranks, step, samples if sample else ''))
  if os.path.exists(path):
    arrays = stage_files.load_npz(path, lambda names: sorted(names),
                                  what='SVD factors file',
                                  remake='rerun, which computes them again')
    return {layer: tuple(arrays[f'{layer}_{part}'] for part in PARTS)
            for layer in LAYERS if f'{layer}_first' in arrays}
  factors = factor_head(params, ranks, sample() if sample else None)
  if write:
    stage_files.save_npz(path, **{f'{layer}_{part}': array
                                  for layer, parts in factors.items()
                                  for part, array in zip(PARTS, parts)})
  return factors

