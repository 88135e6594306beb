"""Data-parallel training gives the parameters of single-device training.

Each configuration runs in fresh processes (the CPU device count is fixed when JAX
starts): 1 device, 8 devices, and 2 processes x 2 devices with gloo collectives
over 127.0.0.1, all on the same global batches.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest


from tests.helpers import ROOT


def _worker(out, data, devices, *extra, num_processes=1, process_id=0,
            coordinator=None):
  command = [sys.executable, '-m', 'tests.mesh_worker', f'--devices={devices}',
             f'--out={out}', f'--data={data}', *extra]
  if num_processes > 1:
    command += [f'--num_processes={num_processes}', f'--process_id={process_id}',
                f'--coordinator={coordinator}']
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', JAX_PLATFORMS='cpu')
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(*processes, timeout=600):
  for process in processes:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]


PROTOCOLS = '--protocols=ten_view,full_image,multi_scale,feature_map_views'


def _load(out, tag):
  with np.load(os.path.join(out, f'{tag}_params.npz')) as params:
    params = dict(params)
  with open(os.path.join(out, f'{tag}_metrics.json')) as f:
    return params, json.load(f)


def _protocols(out):
  with open(os.path.join(out, 'trained_protocols.json')) as f:
    return json.load(f)


def _max_abs_diff(a, b):
  assert a.keys() == b.keys()
  return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


@pytest.fixture(scope='module')
def one_device(small_data, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('one_device'))
  _finish(_worker(out, small_data, 1, PROTOCOLS))
  return _load(out, 'trained') + (_protocols(out),)


def test_eight_devices_match_one(small_data, one_device, tmp_path):
  _finish(_worker(str(tmp_path), small_data, 8))
  params, metrics = _load(str(tmp_path), 'trained')
  reference_params, reference_metrics, _ = one_device
  diff = _max_abs_diff(params, reference_params)
  print(f'1 -> 8 devices: max abs parameter difference {diff:.3g}')
  assert diff < 1e-5
  assert metrics['num_examples'] == reference_metrics['num_examples'] == 30
  np.testing.assert_allclose(metrics['top1'], reference_metrics['top1'], atol=1e-6)
  np.testing.assert_allclose(metrics['loss'], reference_metrics['loss'], rtol=1e-5)


def test_two_processes_match_one_and_their_checkpoint_restores(small_data, one_device,
                                                                tmp_path):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  coordinator = f'127.0.0.1:{port}'
  out = str(tmp_path)
  _finish(*[_worker(out, small_data, 2, PROTOCOLS, num_processes=2, process_id=i,
                    coordinator=coordinator) for i in range(2)])
  params, metrics = _load(out, 'trained')
  reference_params, reference_metrics, reference_protocols = one_device
  diff = _max_abs_diff(params, reference_params)
  print(f'1 process -> 2 processes x 2 devices: max abs parameter difference {diff:.3g}')
  assert diff < 1e-5
  assert metrics['num_examples'] == 30
  np.testing.assert_allclose(metrics['loss'], reference_metrics['loss'], rtol=1e-5)
  # Every eval protocol counts each of the 30 images once over the two shards.
  protocols = _protocols(out)
  assert sorted(protocols) == sorted(reference_protocols) == [
      'feature_map_views', 'full_image', 'multi_scale', 'ten_view']
  for name, got in protocols.items():
    assert got['num_examples'] == reference_protocols[name]['num_examples'] == 30
    np.testing.assert_allclose(got['top1'], reference_protocols[name]['top1'],
                               atol=1e-9)
    np.testing.assert_allclose(got['loss'], reference_protocols[name]['loss'],
                               rtol=1e-5)
  # The checkpoint the two processes wrote, restored by one process on 4 devices.
  _finish(_worker(out, small_data, 4, '--restore'))
  restored, restored_metrics = _load(out, 'restored')
  assert _max_abs_diff(restored, params) == 0.0
  assert restored_metrics == metrics
