"""Features of a trained classification SPP-net for transfer (paper 3.2-3.3):
one layer's vector per image, at one view, no flips, no multi-view.

Layers (`LAYERS`), all of one forward pass of the view:

* `spp6`: the 6 x 6 level of the spatial pyramid (the paper's "pool5/7"),
  (36 * C,), the level's slice of pool5 (the network needs 6 among its levels);
* `pool5`: the whole pyramid, fc6's input;
* `fc6`, `fc7`: after ReLU (dropout is off at test time).

Views (`VIEWS`) of an image, as uint8, by the evaluation protocols' own ops
(`eval_views.views_at_scale`, `core.data.image_ops`):

* `center`: the short side resized to `size`, the size x size center;
* `warp`: the whole image resized to size x size, aspect ignored;
* `full`: the whole image, short side `size`, aspect kept, each side rounded to
  a multiple of `step` (the shape bucket, as the full-image protocol).

`FeatureExtractor` runs views of one shape together: a batch holds about
`pixel_budget` pixels (at least one image), padded with blank images to that
count so that each shape compiles once. It runs on one device.

`split_features` extracts a split's images with their labels. Unreadable
images (`image` None) are skipped and counted. Features are rounded to
float16 (whether cached or not, so a resumed extraction equals an
uninterrupted one) and returned as float32. With a cache folder, finished
images are written there in parts every `part_size` images (atomically), and
a second call reuses them: a killed extraction resumes where its last part
ended; a complete one is read without touching the images.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sppnet_jax.classification import eval_views
from sppnet_jax.core.data import image_ops
from sppnet_jax.core.spp import spp_output_dim
from sppnet_jax.core.zf5 import normalize_images
from sppnet_jax.errors import ConfigError, DataError

LAYERS = ('spp6', 'pool5', 'fc6', 'fc7')
VIEWS = ('center', 'warp', 'full')
_FINE_LEVEL = 6


@dataclasses.dataclass(frozen=True)
class View:
  """How an image becomes the network's input (module docstring)."""
  kind: str  # one of VIEWS
  size: int  # center: crop side (= short side); warp: side; full: short side
  step: int = 32  # full: the shape bucket
  antialias: bool = False  # the backbone's resize_antialias

  def __post_init__(self):
    if self.kind not in VIEWS:
      raise ConfigError(f'view {self.kind!r} is not one of {", ".join(VIEWS)}')
    if self.size < 1 or self.step < 1:
      raise ConfigError(f'a view needs size >= 1 and step >= 1, got size '
                        f'{self.size}, step {self.step}')


def view_image(image: np.ndarray, view: View) -> np.ndarray:
  """uint8 (H, W, 3) input of the network for a uint8 HWC image."""
  if view.kind == 'warp':
    return image_ops.to_uint8(image_ops.resize_bilinear(
        image, [view.size, view.size], view.antialias)).numpy()
  spec = eval_views.ViewSpec(scales=(view.size,), kind=(
      'center' if view.kind == 'center' else 'full_image'), crop=view.size,
                             step=view.step, flip=False)
  return eval_views.views_at_scale(image, view.size, spec,
                                   view.antialias).numpy()[0]


def check_layers(model, layers: Sequence[str]) -> None:
  """One-line ConfigError for an unknown layer, or spp6 of a network whose
  pyramid has no 6 x 6 level."""
  for layer in layers:
    if layer not in LAYERS:
      raise ConfigError(f'layer {layer!r} is not one of {", ".join(LAYERS)}')
  if 'spp6' in layers and _FINE_LEVEL not in tuple(model.spp_levels):
    raise ConfigError(f'layer spp6 is the pyramid\'s 6 x 6 level, which the '
                      f'backbone\'s levels {tuple(model.spp_levels)} lack: use '
                      'pool5, fc6 or fc7')


def _outputs(module, images, layers: tuple[str, ...]):
  """The layers of one forward pass (module docstring), float32."""
  pool5 = module.pool5(module.features(images))
  out = {'pool5': pool5}
  if 'spp6' in layers:
    levels = tuple(module.spp_levels)
    channels = module.last_channels()
    start = spp_output_dim(channels, levels[:levels.index(_FINE_LEVEL)])
    out['spp6'] = pool5[:, start:start + channels * _FINE_LEVEL ** 2]
  if 'fc6' in layers or 'fc7' in layers:
    out['fc6'] = jax.nn.relu(module.fc6(pool5))
    out['fc7'] = jax.nn.relu(module.fc7(out['fc6']))
  return {name: out[name].astype(jnp.float32) for name in layers}


class FeatureExtractor:
  """Layers of a classification SPP-net for batches of uint8 views."""

  def __init__(self, model, params, layers: Sequence[str], *,
               pixel_budget: int = 16 * 224 * 224):
    check_layers(model, layers)
    self.layers = tuple(layers)
    self.pixel_budget = int(pixel_budget)
    self._params = jax.device_put(params)
    self._model = model

    def run(params, views):
      images = normalize_images(views, model.dtype)
      return model.apply({'params': params}, images, self.layers,
                         method=_outputs)

    self._run = jax.jit(run)

  def batch_size(self, height: int, width: int) -> int:
    """Views per batch of this shape: about `pixel_budget` pixels, >= 1."""
    return max(1, self.pixel_budget // (height * width))

  def __call__(self, views: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, H, W, 3) views of one shape -> {layer: float32 (N, D)},
    run in batches of `batch_size(H, W)` (the last one padded)."""
    views = np.asarray(views, np.uint8)
    size = self.batch_size(*views.shape[1:3])
    parts = {layer: [] for layer in self.layers}
    for start in range(0, len(views), size):
      chunk = views[start:start + size]
      padded = np.zeros((size,) + views.shape[1:], np.uint8)
      padded[:len(chunk)] = chunk
      out = jax.device_get(self._run(self._params, padded))
      for layer in self.layers:
        parts[layer].append(np.asarray(out[layer])[:len(chunk)])
    return {layer: np.concatenate(p) for layer, p in parts.items()}


@dataclasses.dataclass(frozen=True)
class LabelledImage:
  """One image of a split: a unique key, the decoded image (None when it
  could not be read) and its label (an int, or a (K,) int8 row)."""
  key: str
  image: np.ndarray | None
  label: Any


@dataclasses.dataclass
class SplitFeatures:
  """A split's features in the split's order (unreadable images left out)."""
  keys: list[str]
  labels: np.ndarray  # (N,) int64 or (N, K) int8
  features: dict[str, np.ndarray]  # layer -> float32 (N, D)
  skipped: int  # images that could not be read
  class_names: tuple[str, ...] = ()  # set by the caller that knows them


def _write_npz(path: str, **arrays) -> None:
  tmp = path + '.tmp.npz'
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def _write_json(path: str, data) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(data, f, indent=1)
  os.replace(tmp, path)


class _Cache:
  """Parts of a split's features in a folder (module docstring)."""

  def __init__(self, directory: str | None, settings: dict):
    self.directory = directory
    self.parts: list[dict] = []
    if directory is None:
      return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, 'settings.json')
    if os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        saved = json.load(f)
      if saved != settings:
        raise DataError(f'the feature cache {directory} was made with other '
                        'settings (backbone, layers, view or data): delete it '
                        'or use another workdir')
    else:
      _write_json(path, settings)
    names = sorted(n for n in os.listdir(directory)
                   if n.startswith('part-') and n.endswith('.npz')
                   and '.tmp' not in n)
    for name in names:
      with np.load(os.path.join(directory, name), allow_pickle=False) as data:
        self.parts.append({k: data[k] for k in data.files})

  def complete(self) -> dict | None:
    if self.directory is None:
      return None
    path = os.path.join(self.directory, 'complete.json')
    if not os.path.exists(path):
      return None
    with open(path, encoding='utf-8') as f:
      return json.load(f)

  def add(self, part: dict) -> None:
    self.parts.append(part)
    if self.directory is not None:
      _write_npz(os.path.join(self.directory,
                              f'part-{len(self.parts) - 1:05d}.npz'), **part)

  def finish(self, skipped: int) -> None:
    if self.directory is not None:
      _write_json(os.path.join(self.directory, 'complete.json'),
                  {'images': int(sum(len(p['positions']) for p in self.parts)),
                   'skipped': int(skipped)})


def split_features(images: Iterable[LabelledImage], extractor: FeatureExtractor,
                   view: View, *, cache_dir: str | None = None,
                   settings: dict | None = None, total: int | None = None,
                   part_size: int = 256) -> SplitFeatures:
  """Features of every readable image of `images` (module docstring).

  `total`: the split's size, when the reader drops unreadable images itself
  (they are then counted as `total` minus the readable ones); else the
  images given as None are counted.

  `settings` (JSON-ready) describes what is extracted (backbone, data, view,
  layers); a cache made with other settings is refused with one line.
  """
  settings = dict(settings or {}, layers=list(extractor.layers),
                  view=dataclasses.asdict(view))
  cache = _Cache(cache_dir, settings)
  finished = cache.complete()
  if finished is None:
    done = {int(p) for part in cache.parts for p in part['positions']}
    skipped = 0
    pending: dict[tuple[int, int], list] = {}
    ready: list = []

    def run_bucket(shape):
      rows = pending.pop(shape)
      out = extractor(np.stack([r[3] for r in rows]))
      for i, (position, key, label, _) in enumerate(rows):
        ready.append((position, key, label,
                      {k: v[i].astype(np.float16) for k, v in out.items()}))

    def flush_ready(force=False):
      while len(ready) >= part_size or (force and ready):
        rows, ready[:] = ready[:part_size], ready[part_size:]
        cache.add(_part(rows, extractor.layers))

    for position, item in enumerate(images):
      if item.image is None:
        skipped += 1
        continue
      if position in done:
        continue
      v = view_image(item.image, view)
      shape = v.shape[:2]
      pending.setdefault(shape, []).append(
          (position, item.key, np.asarray(item.label), v))
      if len(pending[shape]) >= extractor.batch_size(*shape):
        run_bucket(shape)
        flush_ready()
    for shape in list(pending):
      run_bucket(shape)
    flush_ready(force=True)
    if total is not None:
      readable = sum(len(p['positions']) for p in cache.parts)
      skipped = int(total) - readable
    cache.finish(skipped)
  else:
    skipped = int(finished['skipped'])
  return _assemble(cache.parts, extractor.layers, skipped)


def _part(rows, layers) -> dict:
  return {'positions': np.array([r[0] for r in rows], np.int64),
          'keys': np.array([r[1] for r in rows], str),
          'labels': np.stack([r[2] for r in rows]),
          **{f'layer_{layer}': np.stack([r[3][layer] for r in rows])
             for layer in layers}}


def _assemble(parts: list[dict], layers, skipped: int) -> SplitFeatures:
  if not parts:
    raise DataError('no readable image in the split: check the data')
  positions = np.concatenate([p['positions'] for p in parts])
  order = np.argsort(positions, kind='stable')
  if len(np.unique(positions)) != len(positions):
    raise DataError('the feature cache holds an image twice: delete it')
  cat = lambda name: np.concatenate([p[name] for p in parts])[order]
  return SplitFeatures(
      keys=[str(k) for k in cat('keys')], labels=cat('labels'),
      features={layer: cat(f'layer_{layer}').astype(np.float32)
                for layer in layers},
      skipped=skipped)
