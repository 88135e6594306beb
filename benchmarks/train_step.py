"""Benchmarks the project's JAX train and eval steps against a PyTorch reference.

Prints ONE table: for each (network, model, input size, batch) the JAX train step (the
project's own `steps.train_step`, jitted with the state donated, exactly as
`train.compile_train_steps` does, minus the mesh), the JAX eval step
(`steps.make_eval_step`), and, measured in the same run, the identical network
in PyTorch eager and `torch.compile` (benchmarks/torch_reference.py). Columns:
compile time, median ms/step, images/s, achieved GFLOP/s (analytic FLOPs: 2 per
MAC forward; a train step counts 3x the forward), and speed of the JAX row
relative to the best PyTorch row of its group (>1: JAX is faster).

The variants of a group are timed in interleaved rounds (one step of each per
round, after warm-up), so that a load change on a shared machine hits them all.

  python benchmarks/train_step.py                 # CPU: batch 32, sizes 224/180
  python benchmarks/train_step.py --quick         # smoke run, well under a minute
  python benchmarks/train_step.py --batch 32,128 --models sppnet --sizes 224
  python benchmarks/train_step.py --architectures overfeat7 --models sppnet --sizes 224
  python benchmarks/train_step.py --tcmalloc both # each row with and without it
  python benchmarks/train_step.py --no-torch      # JAX rows only

PyTorch is a benchmark-only dependency: pip install -r requirements-bench.txt.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time
import types

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

TCMALLOC_GLOBS = ('/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4',
                  '/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4',
                  '/usr/lib/*/libtcmalloc_minimal.so*', '/usr/lib/*/libtcmalloc.so*',
                  '/usr/lib64/libtcmalloc*.so*', '/usr/local/lib/libtcmalloc*.so*')


# ----------------------------------------------------------------------------
# FLOPs, analytically.

def _model(name: str, size: int, conv_impl: str = 'auto',
           architecture: str = 'zf5'):
  """The paper's full-size network (1000 classes), as the recipes build it:
  `name` 'sppnet', 'nospp' (the architecture's fixed pool5) or 'zfnet'."""
  from sppnet_jax import NoSPPNet, SPPNet, ZFNet
  if name == 'sppnet':
    return SPPNet(conv_impl=conv_impl, architecture=architecture)
  if name == 'zfnet':
    return ZFNet(image_size=size, conv_impl=conv_impl)
  return NoSPPNet(image_size=size, conv_impl=conv_impl, architecture=architecture)


def forward_macs(model: str, size: int, architecture: str = 'zf5') -> int:
  """Multiply-accumulates of one forward pass of one image (convs and fcs),
  from the model's own geometry."""
  from sppnet_jax.core.zf5 import forward_macs as macs
  return macs(_model(model, size, architecture=architecture), size)


def step_flops(model: str, size: int, batch: int, mode: str,
               architecture: str = 'zf5') -> float:
  forward = 2.0 * forward_macs(model, size, architecture) * batch
  return 3.0 * forward if mode == 'train' else forward


# ----------------------------------------------------------------------------
# The variants: each is built, compiled (timed), then called once per round.

class Variant:
  framework = ''
  name = ''
  compile_s = float('nan')

  def step(self):
    raise NotImplementedError


# The optimizer fields of the recipes' base config (sppnet_jax/classification/
# config.py), without ml_collections: the optimizer's structure is the
# recipes', and its values do not change a step's cost.
OPTIMIZER = types.SimpleNamespace(learning_rate=0.01, warmup_epochs=0.0,
                                  min_learning_rate_ratio=0.0, momentum=0.9,
                                  weight_decay=1e-4, bias_lr_multiplier=1.0)


class JaxVariant(Variant):
  framework = 'jax'

  def __init__(self, model_name, size, batch, mode, conv_impl, seed=0,
               architecture='zf5'):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from sppnet_jax.classification import steps
    from sppnet_jax.core import optim, parallel
    from sppnet_jax.core.train_state import TrainState
    self.jax = jax
    self.name = f'jax ({conv_impl})' if conv_impl != 'auto' else 'jax'
    model = _model(model_name, size, conv_impl, architecture)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, model.num_classes, (batch,), dtype=np.int32)
    batch_arrays = {'image': jnp.asarray(images), 'label': jnp.asarray(labels)}
    if mode == 'eval':
      batch_arrays['mask'] = jnp.ones((batch,), bool)
    # The state training builds (model.init + the optimizer), without data.
    schedule = optim.learning_rate_schedule(OPTIMIZER, steps_per_epoch=1000,
                                            total_steps=100_000)
    tx = optim.create_optimizer(OPTIMIZER, schedule)

    def init(key):
      params = model.init(key, jnp.zeros((1, size, size, 3), model.dtype),
                          train=False)['params']
      return TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    state = jax.jit(init)(jax.random.key(seed))
    start = time.perf_counter()
    if mode == 'train':
      step = steps.make_train_step(model, schedule, seed=seed)
      self.compiled = step.lower(state, batch_arrays).compile()
      self.state = state
    else:
      mesh = parallel.create_mesh()
      step = steps.make_eval_step(model, mesh, parallel.replicated_sharding(mesh))
      self.state = jax.device_put(state.params, parallel.replicated_sharding(mesh))
      batch_arrays = parallel.to_global(jax.device_get(batch_arrays), mesh)
      self.compiled = step.lower(self.state, batch_arrays).compile()
    self.compile_s = time.perf_counter() - start
    self.mode, self.batch = mode, batch_arrays

  def step(self):
    if self.mode == 'train':
      self.state, metrics = self.compiled(self.state, self.batch)
      self.jax.block_until_ready((self.state, metrics))
    else:
      self.jax.block_until_ready(self.compiled(self.state, self.batch))


class TorchVariant(Variant):
  framework = 'torch'

  def __init__(self, model_name, size, batch, mode, compiled, seed=0,
               architecture='zf5'):
    import numpy as np
    import torch
    import torch_reference
    torch.manual_seed(seed)
    self.name = 'torch.compile' if compiled else 'torch eager'
    model = torch_reference.PaperNet(model_name, architecture=architecture)
    model.train(mode == 'train')
    rng = np.random.default_rng(seed)
    self.images = torch.from_numpy(
        rng.integers(0, 256, (batch, 3, size, size), dtype=np.uint8))
    self.labels = torch.from_numpy(rng.integers(0, 1000, (batch,), dtype=np.int64))
    if mode == 'train':
      optimizer = torch_reference.create_optimizer(model)
      if compiled:
        model = torch.compile(model, dynamic=False)
      self._step = torch_reference.make_train_step(model, optimizer)
    else:
      if compiled:
        model = torch.compile(model, dynamic=False)
      self._step = torch_reference.make_eval_step(model)
    # First call: torch.compile compiles here (eager just warms its allocator).
    start = time.perf_counter()
    self.step()
    self.compile_s = time.perf_counter() - start

  def step(self):
    self._step(self.images, self.labels)


# ----------------------------------------------------------------------------
# Running groups and printing the table.

def _median(values):
  ordered = sorted(values)
  mid = len(ordered) // 2
  return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def run_group(architecture, model, size, batch, mode, args, malloc):
  """Builds every variant of one (architecture, model, size, batch, mode),
  warms them up, then times `args.steps` interleaved rounds; returns one row
  per variant."""
  variants = []
  for impl in args.conv_impl:
    variants.append(JaxVariant(model, size, batch, mode, impl,
                               architecture=architecture))
  if not args.no_torch:
    for compiled in args.torch_modes:
      variants.append(TorchVariant(model, size, batch, mode, compiled == 'compile',
                                   architecture=architecture))
  for _ in range(args.warmup):
    for variant in variants:
      variant.step()
  times = {id(v): [] for v in variants}
  for _ in range(args.steps):
    for variant in variants:
      start = time.perf_counter()
      variant.step()
      times[id(variant)].append(time.perf_counter() - start)
  flops = step_flops(model, size, batch, mode, architecture)
  rows = []
  for variant in variants:
    seconds = _median(times[id(variant)])
    rows.append(dict(architecture=architecture, model=model, size=size, batch=batch, mode=mode,
                     framework=variant.framework, impl=variant.name, malloc=malloc,
                     compile_s=variant.compile_s, ms=1e3 * seconds,
                     min_ms=1e3 * min(times[id(variant)]),
                     images_s=batch / seconds, gflops=flops / seconds / 1e9))
  best_torch = min((r['ms'] for r in rows if r['framework'] == 'torch'), default=None)
  for row in rows:
    row['ratio'] = (best_torch / row['ms'] if best_torch and row['framework'] == 'jax'
                    else None)
  del variants
  return rows


def groups(args):
  for architecture in args.architectures:
    for model in args.models:
      if model == 'zfnet' and architecture != 'zf5':
        continue  # ZF-5's no-SPP baseline; 'nospp' is every network's.
      for size in args.sizes:
        if model != 'sppnet' and size != 224:
          continue  # A no-SPP net's fc6 fixes its input at 224.
        if not args.no_train:
          for batch in args.batch:
            yield architecture, model, size, batch, 'train'
        if not args.no_eval:
          yield architecture, model, size, args.eval_batch, 'eval'


def print_table(rows, file=sys.stdout):
  header = ('network', 'model', 'size', 'batch', 'step', 'implementation', 'malloc, CPU convs',
            'compile s', 'ms/step', 'min ms', 'images/s', 'GFLOP/s', 'JAX/best torch')
  lines = []
  for r in rows:
    ratio = f"{r['ratio']:.2f}x" if r.get('ratio') else ''
    lines.append((r.get('architecture', 'zf5'), r['model'], str(r['size']),
                  str(r['batch']), r['mode'], r['impl'],
                  r['malloc'], f"{r['compile_s']:.1f}", f"{r['ms']:.0f}",
                  f"{r['min_ms']:.0f}", f"{r['images_s']:.1f}", f"{r['gflops']:.1f}",
                  ratio))
  widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
            for i, h in enumerate(header)]
  fmt = lambda cells: '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'
  print(fmt(header), file=file)
  print('|' + '|'.join('-' * (w + 2) for w in widths) + '|', file=file)
  for line in lines:
    print(fmt(line), file=file)


def find_tcmalloc():
  for pattern in TCMALLOC_GLOBS:
    found = sorted(glob.glob(pattern))
    if found:
      return found[0]
  return None


def _parse_list(kind):
  return lambda text: [kind(v) for v in text.split(',') if v]


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--quick', action='store_true',
                      help='smoke run: SPP-net 224, batch 4, 3 steps, torch eager only')
  parser.add_argument('--architectures', type=_parse_list(str), default=['zf5'],
                      help='of zf5, convnet5, overfeat5, overfeat7 (the paper\'s Table 1)')
  parser.add_argument('--models', type=_parse_list(str), default=['sppnet', 'zfnet'],
                      help='sppnet, nospp (each network\'s fixed pool5), zfnet (ZF-5\'s)')
  parser.add_argument('--sizes', type=_parse_list(int), default=[224, 180])
  parser.add_argument('--batch', type=_parse_list(int), default=None,
                      help='train batch sizes (default: 32 on CPU, 256 on a GPU)')
  parser.add_argument('--eval-batch', type=int, default=64)
  parser.add_argument('--steps', type=int, default=10, help='timed steps per row')
  parser.add_argument('--warmup', type=int, default=1, help='untimed steps per row')
  parser.add_argument('--no-torch', action='store_true')
  parser.add_argument('--no-train', action='store_true')
  parser.add_argument('--no-eval', action='store_true')
  parser.add_argument('--torch-modes', type=_parse_list(str), default=['eager', 'compile'],
                      help="PyTorch rows: 'eager', 'compile' or both")
  parser.add_argument('--conv-impl', type=_parse_list(str), default=['auto'],
                      help="JAX rows: core.layers.conv2d implementations, e.g. "
                      "'auto,xla,mixed' ('winograd' takes kernels spanning 3 strides "
                      "only; 'auto' uses it for them on a CPU)")
  parser.add_argument('--tcmalloc', choices=('auto', 'on', 'off', 'both'),
                      default='auto',
                      help='LD_PRELOAD tcmalloc (auto: when installed); both: run '
                      'every row with and without it (two processes, one table)')
  parser.add_argument('--xla-conv', choices=('eigen', 'ynn', 'both'), default='eigen',
                      help='eigen: add runtime.CPU_CONV_XLA_FLAG to XLA_FLAGS (CPU '
                      "convolutions on Eigen, the project's recommendation); ynn: "
                      "jaxlib's default (YNNPACK); both: a row for each")
  parser.add_argument('--json', default='', help='also write the rows to this file')
  parser.add_argument('--_child', default='', help=argparse.SUPPRESS)
  parser.add_argument('--_setup', default='', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.quick:
    args.models, args.sizes, args.steps, args.warmup = ['sppnet'], [224], 3, 1
    args.batch, args.eval_batch = args.batch or [4], 4
    args.torch_modes = ['eager']
  return args


def _conv_flag() -> str:
  from sppnet_jax.runtime import CPU_CONV_XLA_FLAG  # pylint: disable=g-import-not-at-top
  return CPU_CONV_XLA_FLAG


def _strip(argv, names):
  """argv without the given '--flag value' / '--flag=value' options."""
  out, skip = [], False
  for item in argv:
    if skip:
      skip = False
    elif item in names:
      skip = True
    elif not any(item.startswith(name + '=') for name in names):
      out.append(item)
  return out


def _run_child(argv, preload, xla_conv):
  """Reruns this script in a subprocess with or without tcmalloc preloaded and
  with the given CPU convolution backend, and returns its rows."""
  env = dict(os.environ)
  if preload:
    env['LD_PRELOAD'] = preload
  else:
    env.pop('LD_PRELOAD', None)
  flag = _conv_flag()
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if not f.startswith(flag.split('=')[0] + '=')]
  if xla_conv == 'eigen':
    flags.append(flag)
  env['XLA_FLAGS'] = ' '.join(flags)
  setup = f'{"tcmalloc" if preload else "glibc"}, {xla_conv}'
  out = f'/tmp/sppnet_bench_{os.getpid()}_{len(os.listdir("/tmp"))}.json'
  subprocess.run([sys.executable, os.path.abspath(__file__), *argv,
                  '--_child', out, '--_setup', setup], env=env, check=True)
  with open(out) as f:
    rows = json.load(f)
  os.remove(out)
  return rows


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  args = parse_args(argv)
  if not args._child:
    preload = find_tcmalloc()
    mallocs = {'auto': [bool(preload)], 'on': [True], 'off': [False],
               'both': [False, True]}[args.tcmalloc]
    if any(mallocs) and not preload:
      sys.exit('tcmalloc is not installed: apt-get install -y libtcmalloc-minimal4 '
               '(or use --tcmalloc off).')
    convs = ['eigen', 'ynn'] if args.xla_conv == 'both' else [args.xla_conv]
    child_argv = _strip(argv, ('--tcmalloc', '--xla-conv', '--json'))
    rows = []
    for conv in convs:
      for on in mallocs:
        rows += _run_child(child_argv, preload if on else None, conv)
    if len(mallocs) * len(convs) > 1:  # Group the runs' rows by benchmark.
      key = lambda r: (r['architecture'], r['model'], r['size'], r['mode'],
                       r['batch'])
      order = {}
      for r in rows:
        order.setdefault(key(r), len(order))
      rows.sort(key=lambda r: order[key(r)])
    print_table(rows)
    if args.json:
      with open(args.json, 'w') as f:
        json.dump(rows, f, indent=1)
    return rows

  import jax
  if args.batch is None:
    args.batch = [256] if jax.default_backend() == 'gpu' else [32]
  if not args.no_torch:
    try:
      import torch  # noqa: F401
    except ImportError:
      print('PyTorch is not installed (pip install -r requirements-bench.txt): '
            'JAX rows only.', file=sys.stderr)
      args.no_torch = True
  malloc = args._setup
  rows = []
  print(f'# jax {jax.__version__} on {jax.default_backend()} '
        f'({jax.devices()[0].device_kind}), {malloc}, '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}', file=sys.stderr)
  for architecture, model, size, batch, mode in groups(args):
    start = time.perf_counter()
    group = run_group(architecture, model, size, batch, mode, args, malloc)
    rows += group
    print(f'# {architecture} {model} {size} {mode} batch {batch}: '
          f'{time.perf_counter() - start:.0f} s', file=sys.stderr)
    print_table(group, file=sys.stderr)
  with open(args._child, 'w') as f:
    json.dump(rows, f)
  return rows


if __name__ == '__main__':
  main()
