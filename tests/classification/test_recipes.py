"""The recipes of the paper's other networks say what their names say:
NETWORK_spp_single.py (SPP-net at 224), NETWORK_spp_mult.py (224 and 180,
one epoch per size) and NETWORK_nospp.py (the no-SPP baseline at 224), each a
valid config."""

import runpy

import pytest

from sppnet_jax.classification.config import validate_config
from tests.helpers import ROOT

KINDS = {'spp_single': ('sppnet', (224,)), 'spp_mult': ('sppnet', (224, 180)),
         'nospp': ('nospp', (224,))}


@pytest.mark.parametrize('network', ['convnet5', 'overfeat5', 'overfeat7'])
@pytest.mark.parametrize('kind', sorted(KINDS))
def test_recipe_names_say_what_they_are(network, kind):
  config = runpy.run_path(
      f'{ROOT}/configs/classification/{network}_{kind}.py')['get_config']()
  validate_config(config)
  model, sizes = KINDS[kind]
  assert (config.architecture, config.model, tuple(config.train_sizes),
          config.eval_size) == (network, model, sizes, 224)
  assert config.size_schedule == 'epoch' and config.learning_rate > 0
