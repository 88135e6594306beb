"""The store's resume and final-state rules (`Checkpoints.resume`,
`restore_final`) and the loops' shared validation (`PeriodicValidation`),
on a tiny state of known values."""

import flax
import ml_collections
import numpy as np
import pytest

from sppnet_jax.core import checkpoints
from sppnet_jax.core.train_loop import PeriodicValidation, every_steps
from sppnet_jax.errors import ConfigError


def _config():
  return ml_collections.ConfigDict(dict(
      checkpoint_every_steps=1, keep_latest_checkpoints=3,
      keep_best_checkpoints=1))


def _state(value: float) -> dict:
  return {'w': np.full((2, 3), value, np.float32)}


def _store(path):
  return checkpoints.Checkpoints(str(path), _config(), best_metric='map')


FIELDS = {'learning_rate': 0.01, 'scales': [344]}


def test_resume_starts_fresh_then_continues_and_refuses_other_settings(
    tmp_path):
  store = _store(tmp_path)
  state, step = store.resume(_state(0.0), FIELDS, 'fine-tuning')
  assert step == 0 and float(state['w'][0, 0]) == 0.0
  store.save_latest(4, _state(4.0), force=True, training_fields=FIELDS)
  store.save_latest(7, _state(7.0), force=True, training_fields=FIELDS)
  store.wait()
  store.close()

  store = _store(tmp_path)
  state, step = store.resume(_state(0.0), dict(FIELDS, scales=(344,)),
                             'fine-tuning')  # A tuple equals the saved list.
  assert step == 7
  np.testing.assert_array_equal(state['w'], np.full((2, 3), 7.0))
  store.close()

  store = _store(tmp_path)
  with pytest.raises(ConfigError) as error:
    store.resume(_state(0.0), dict(FIELDS, learning_rate=0.1), 'fine-tuning')
  assert str(error.value) == (
      f'{tmp_path} holds fine-tuning with other settings (learning_rate: '
      '0.01 -> 0.1): use another --workdir, or the settings it was started '
      'with.')


def test_restore_final_takes_the_best_only_when_asked_and_there_is_one(
    tmp_path):
  store = _store(tmp_path)
  with pytest.raises(ConfigError, match=r'holds no fine-tuned state: run '
                     r'--mode=train first\.$'):
    store.restore_final(_state(0.0), use_best=True, what='fine-tuned state')
  for step, value in ((2, 0.5), (4, 0.9), (6, 0.7)):
    store.save_latest(step, _state(step), force=True)
  store.wait()
  # No best record yet: the latest, asked for the best or not.
  for use_best in (True, False):
    state, step = store.restore_final(_state(0.0), use_best=use_best,
                                      what='fine-tuned state')
    assert step == 6 and float(state['w'][0, 0]) == 6.0
  for step, value in ((2, 0.5), (4, 0.9), (6, 0.7)):
    store.save_best(step, _state(step), {'map': value})
  store.wait()
  state, step = store.restore_final(_state(0.0), use_best=True,
                                    what='fine-tuned state')
  assert step == 4 and float(state['w'][0, 0]) == 4.0
  state, step = store.restore_final(_state(0.0), use_best=False,
                                    what='fine-tuned state')
  assert step == 6 and float(state['w'][0, 0]) == 6.0
  store.close()


class _Writer:

  def __init__(self):
    self.scalars = []

  def write_scalars(self, step, scalars):
    self.scalars.append((step, dict(scalars)))


@flax.struct.dataclass
class _TrainState:
  params: dict


def _State(value):  # pylint: disable=invalid-name
  return _TrainState(_state(value))


def test_periodic_validation_runs_when_due_and_catches_up_once(tmp_path):
  store, writer, lines = _store(tmp_path), _Writer(), []
  validation = PeriodicValidation(
      lambda params: {'map': float(params['w'][0, 0]) / 10, 'other': 1.0},
      every_steps(5, 12), store, writer, prefix='val_', best_keys=('map',),
      log=lambda *args: lines.append(args), training_fields=FIELDS)
  assert [s for s in range(13) if validation.due(s)] == [0, 5, 10, 12]
  metrics = validation(5, _State(5.0), 3, {'loss': 1.0})
  assert metrics == {'map': 0.5, 'other': 1.0}
  assert writer.scalars == [(5, {'val_map': 0.5, 'val_other': 1.0})]
  assert lines == [(5, metrics, 3, {'loss': 1.0})]
  store.wait()
  # Step 5 has its best record: a resume there validates nothing again.
  assert validation.catch_up(5, _State(5.0)) == {}
  # Step 10 was saved but stopped before its validation: caught up.
  assert validation.catch_up(10, _State(10.0)) == {'map': 1.0, 'other': 1.0}
  assert validation.catch_up(7, _State(7.0)) == {}  # not due
  assert validation.catch_up(0, _State(0.0)) == {}  # nothing trained yet
  store.wait()
  assert store.best_step() == 10
  assert len(writer.scalars) == 2
  none = PeriodicValidation(None, every_steps(5, 12), store, writer,
                            prefix='val_', best_keys=('map',), log=print)
  assert not any(none.due(s) for s in range(13))
  store.close()
