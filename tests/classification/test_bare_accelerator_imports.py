"""The step benchmark's model and steps need only what a bare accelerator image
has (jax, flax, optax, numpy): loaded and run with TensorFlow, TFDS, clu and
ml_collections blocked from import."""

import subprocess
import sys

from tests.helpers import ROOT

_BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu', 'ml_collections')
_SCRIPT = f'''
import runpy
import sys


class Block:
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in {_BLOCKED!r}:
      raise ImportError(name + ' is not on a bare accelerator image')


sys.meta_path.insert(0, Block())
bench = runpy.run_path('benchmarks/train_step.py', run_name='bench')
for mode in ('train', 'eval'):
  variant = bench['JaxVariant']('sppnet', 64, 2, mode, 'auto')
  variant.step()
  variant.step()
zfnet = bench['JaxVariant']('zfnet', 224, 1, 'eval', 'auto')
zfnet.step()
print('loaded:', sorted({{m.split('.')[0] for m in sys.modules}} & set({_BLOCKED!r})))
print('macs:', bench['forward_macs']('sppnet', 224), bench['forward_macs']('zfnet', 224))
'''


def test_step_benchmark_runs_without_tensorflow_clu_or_ml_collections():
  result = subprocess.run([sys.executable, '-c', _SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={'JAX_PLATFORMS': 'cpu', 'PATH': '/usr/bin:/bin'})
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert 'loaded: []' in lines, lines
  # Hand-computed MACs of ZF-5 at 224 (conv maps 110, 26, 13, 13, 13):
  convs = (110 * 110 * 7 * 7 * 3 * 96 + 26 * 26 * 5 * 5 * 96 * 256
           + 13 * 13 * 9 * 256 * 384 + 13 * 13 * 9 * 384 * 384
           + 13 * 13 * 9 * 384 * 256)
  fcs = 4096 * 4096 + 4096 * 1000
  assert f'macs: {convs + 12800 * 4096 + fcs} {convs + 9216 * 4096 + fcs}' in lines
