"""A run stopped by SIGTERM, or killed with kill -9, and started again with the
same command ends with the parameters of a run that was never interrupted."""

import os
import signal
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.helpers import start_main

FINAL_STEP = 30  # 6 epochs of 5 steps


def _start(data, workdir, *extra):
  return start_main(f'--workdir={workdir}', f'--config.data_dir={data}',
                    '--config.num_epochs=6', '--config.checkpoint_every_steps=2',
                    '--config.keep_latest_checkpoints=2', *extra)


def _run(data, workdir, *extra):
  process = _start(data, workdir, *extra)
  output, _ = process.communicate(timeout=600)
  return process.returncode, output


def _checkpoint_folder(workdir):
  return os.path.join(workdir, 'checkpoints')


def _saved_steps(workdir):
  """The finalized steps, as Orbax's public helpers judge them."""
  folder = _checkpoint_folder(workdir)
  if not os.path.isdir(folder):
    return []
  return sorted(int(name) for name in os.listdir(folder) if name.isdigit()
                and ocp.utils.is_checkpoint_finalized(os.path.join(folder, name)))


def _interrupt_after_first_save(data, workdir, signum):
  process = _start(data, workdir)
  deadline = time.time() + 600
  while not _saved_steps(workdir) and process.poll() is None:
    assert time.time() < deadline, 'no checkpoint was written'
    time.sleep(0.02)
  process.send_signal(signum)
  output, _ = process.communicate(timeout=600)
  return process.returncode, output


def _saves_in_progress(workdir):
  folder = _checkpoint_folder(workdir)
  return ocp.utils.tmp_checkpoints(folder) if os.path.isdir(folder) else []


def _final_params(workdir):
  path = os.path.join(workdir, 'checkpoints', str(FINAL_STEP), 'state')
  state = ocp.StandardCheckpointer().restore(path)
  return {k: np.asarray(v) for k, v in
          ocp.tree.to_flat_dict(state['params'], sep='/').items()}


@pytest.fixture(scope='module')
def reference(small_data, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('reference'))
  code, output = _run(small_data, workdir)
  assert code == 0, output[-3000:]
  return _final_params(workdir)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL],
                         ids=['sigterm', 'kill-9'])
def test_interrupted_run_resumes_to_the_same_parameters(small_data, reference, tmp_path,
                                                        signum):
  workdir = str(tmp_path)
  code, output = _interrupt_after_first_save(small_data, workdir, signum)
  if signum == signal.SIGTERM:
    assert code == 143, output[-3000:]
    assert 'the same command resumes' in output
  else:
    assert code == -signal.SIGKILL, output[-3000:]
  stopped_at = max(_saved_steps(workdir))
  assert stopped_at < FINAL_STEP, 'the run ended before it was interrupted'
  code, output = _run(small_data, workdir)
  assert code == 0, output[-3000:]
  assert f'at step {stopped_at}' in output  # 'Resumed from ... at step N.'
  params = _final_params(workdir)
  assert params.keys() == reference.keys()
  for name in params:
    np.testing.assert_array_equal(params[name], reference[name], err_msg=name)


# Wide fc6/fc7 (about 134 MB of parameters and momentum) make a save last long
# enough to be caught half-written.
WIDE = ('--config.fc_dim=4096',)


def test_kill_during_a_save_resumes_from_the_last_complete_one(small_data, tmp_path):
  reference_dir, workdir = str(tmp_path / 'reference'), str(tmp_path / 'killed')
  code, output = _run(small_data, reference_dir, *WIDE)
  assert code == 0, output[-3000:]
  process = _start(small_data, workdir, *WIDE)
  deadline = time.time() + 600
  while not (_saved_steps(workdir) and _saves_in_progress(workdir)):
    assert process.poll() is None, 'the run ended before a save could be interrupted'
    assert time.time() < deadline
    time.sleep(0.005)
  process.kill()
  process.communicate(timeout=60)
  complete = max(_saved_steps(workdir))
  code, output = _run(small_data, workdir, *WIDE)
  assert code == 0, output[-3000:]
  assert f'at step {complete}.' in output
  params, reference = _final_params(workdir), _final_params(reference_dir)
  for name in params:
    np.testing.assert_array_equal(params[name], reference[name], err_msg=name)
