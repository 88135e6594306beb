"""Truncated SVD of the detector's fc6 and fc7 (Fast R-CNN, Girshick 2015,
section 3.1): a (D_in, D_out) kernel W = U S V^T is replaced by its rank-r
approximation, applied as two matrix products, x @ (U_r S_r) @ V_r^T + b,
so a region costs r (D_in + D_out) multiply-accumulates instead of
D_in D_out. No retraining: the factors come from the trained head.

Ranks are given for the full-width head (fc_dim 4096; Fast R-CNN's 1024 for
fc6 and 256 for fc7) and scale with the head's fc_dim, so the same setting
keeps the same fraction of a narrow network's layer (`scaled_ranks`). A rank
at or above min(D_in, D_out) keeps the layer whole (exactly the original).

The factors of one trained head are computed once and stored beside it
(`load_or_factor`): a file per (fine-tuned step, ranks), written atomically.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from sppnet_jax.detection import stage_files

FULL_FC_DIM = 4096  # the width the configured ranks refer to
LAYERS = ('fc6', 'fc7')


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


def factor_head(params: dict, ranks: Sequence[int]) -> dict:
  """{layer: (first, second)} factors of fc6 and fc7 of the head `params`
  at `ranks` (already scaled); a layer whose rank keeps it whole is left out
  (it runs as it is)."""
  factors = {}
  for layer, rank in zip(LAYERS, ranks):
    kernel = np.asarray(params[layer]['kernel'])
    if rank < min(kernel.shape):
      factors[layer] = factor(kernel, rank)
  return factors


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


def file_name(ranks: Sequence[int], step: int) -> str:
  return f'svd_fc6-{ranks[0]}_fc7-{ranks[1]}_step-{step}.npz'


def load_or_factor(folder: str, params: dict, ranks: Sequence[int], step: int,
                   *, write: bool = True) -> dict:
  """`factor_head` of the head of fine-tuned step `step`, read from
  `folder` when it was computed before, else computed (and written when
  `write`: one process writes, every process computes the same)."""
  path = os.path.join(folder, file_name(ranks, step))
  if os.path.exists(path):
    arrays = stage_files.load_npz(path, lambda names: sorted(names),
                                  what='SVD factors file',
                                  remake='rerun, which computes them again')
    return {layer: (arrays[f'{layer}_first'], arrays[f'{layer}_second'])
            for layer in LAYERS if f'{layer}_first' in arrays}
  factors = factor_head(params, ranks)
  if write:
    stage_files.save_npz(path, **{f'{layer}_{part}': array
                                  for layer, pair in factors.items()
                                  for part, array in zip(('first', 'second'),
                                                         pair)})
  return factors
