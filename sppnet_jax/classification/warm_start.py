"""Starting a classification run from another trained run (fine-tuning on a
new data set, the paper's transfer setting taken one step further).

`config.init_from` names a trained workdir (its best checkpoint, else its
latest) or a step folder. The new run is initialised as usual (config.seed),
then every layer but fc8 is replaced by the saved one; fc8 keeps its fresh
draw, sized to the new run's classes. The model fields that fix the shapes of
those layers (MODEL_FIELDS but num_classes) must equal the saved ones, else a
one-line ConfigError before any data is read. Only a run that starts from
scratch (no latest checkpoint in its workdir) is warm-started: a resumed run
continues from its own checkpoint.
"""

import os

import jax
import ml_collections
from absl import logging

from sppnet_jax.classification import saved_run
from sppnet_jax.core import checkpoints
from sppnet_jax.errors import ConfigError

NEW_LAYER = 'fc8'  # the layer a warm start draws afresh
_SHAPE_FIELDS = tuple(f for f in checkpoints.MODEL_FIELDS if f != 'num_classes')


def source_config(config: ml_collections.ConfigDict,
                  workdir: str) -> ml_collections.ConfigDict | None:
  """The saved config of config.init_from when this run starts from it
  (init_from set and `workdir` holds no latest checkpoint), checked against
  `config`; None otherwise. Reads only the checkpoint's JSON record.

  Raises:
    CheckpointNotFoundError: no checkpoint at config.init_from.
    ConfigError: the saved network does not fit this run's model fields.
  """
  if not config.init_from or checkpoints.has_latest(workdir):
    return None
  saved, _ = saved_run.saved_config_at(config.init_from)
  normal = lambda v: list(v) if isinstance(v, (tuple, list)) else v
  diffs = [f'{f} {normal(saved[f])!r} here {normal(config[f])!r}'
           for f in _SHAPE_FIELDS if normal(saved[f]) != normal(config[f])]
  if diffs:
    raise ConfigError(
        f'--config.init_from={config.init_from} does not fit this run (saved '
        f'{"; ".join(diffs)}): set those fields to the saved values, or start '
        'from a run of this network.')
  return saved


def start_from(saved: ml_collections.ConfigDict, state):
  """`state` (freshly initialised) with every layer but fc8 restored from the
  step `saved` names (see `source_config`), on the state's shardings."""
  restored = saved_run.restore_saved(saved)
  params = dict(state.params)
  for name, layer in restored.params.items():
    if name != NEW_LAYER:
      params[name] = jax.tree.map(lambda new, old: jax.device_put(new, old.sharding),
                                  layer, params[name])
  logging.info('Started from %s (step %d): every layer but %s copied; %s new '
               'with %d outputs.', os.path.relpath(restored.path), restored.step,
               NEW_LAYER, NEW_LAYER, params[NEW_LAYER]['bias'].shape[0])
  return state.replace(params=params)
