"""Every network of the paper trains through the loop at two sizes with one
compilation of the train step per size (narrow widths, 64 and 48 pixels), and
its no-SPP baseline at one size."""

import pytest

from sppnet_jax.classification import train
from sppnet_jax.classification.restore import restore
from sppnet_jax.core import compile_count
from tests.helpers import small_config


# conv1's kernel side and the convolutions of each network (Table 1).
TRUNKS = {'convnet5': (11, 5), 'overfeat5': (7, 5), 'overfeat7': (7, 7)}


def _trained_trunk(config, workdir) -> tuple[int, int]:
  """conv1's kernel side and the number of convolutions of the saved net."""
  params = restore(config, workdir, with_data=False).params
  return (params['conv1']['kernel'].shape[0],
          sum(name.startswith('conv') for name in params))


@pytest.mark.parametrize('network', sorted(TRUNKS))
def test_network_trains_at_two_sizes_compiling_once_per_size(small_data, tmp_path,
                                                             network):
  # Batches alternate 64, 48, 64, 48; the first eval batch of 16 scores it.
  config = small_config(small_data, architecture=network, num_train_steps=4,
                        size_schedule='step', steps_per_eval=1)
  with compile_count.compilations() as compiled:
    metrics = train.train_and_evaluate(config, str(tmp_path))
  assert compiled.count('train_step') == 2, compiled
  assert metrics['num_examples'] == 16 and metrics['loss'] > 0
  assert _trained_trunk(config, str(tmp_path)) == TRUNKS[network]


def test_no_spp_network_trains_at_its_one_size(small_data, tmp_path):
  config = small_config(small_data, model='nospp', architecture='overfeat7',
                        train_sizes=(64,), num_train_steps=2, steps_per_eval=1)
  with compile_count.compilations() as compiled:
    metrics = train.train_and_evaluate(config, str(tmp_path))
  assert compiled.count('train_step') == 1, compiled
  assert metrics['num_examples'] == 16 and metrics['loss'] > 0
  assert _trained_trunk(config, str(tmp_path)) == TRUNKS['overfeat7']
