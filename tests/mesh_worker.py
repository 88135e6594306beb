"""A few training steps on fixed global batches, on however many CPU devices and
processes this is started with; writes the parameters and eval metrics.

  python -m tests.mesh_worker --devices=8 --out=DIR [--data=DIR]
  python -m tests.mesh_worker --devices=2 --num_processes=2 --process_id=0 \
      --coordinator=127.0.0.1:PORT --out=DIR

Every process feeds its own rows of each global batch, as real data-parallel
training does; the parameters must not depend on the device or process count.
With --protocols, the trained state is also scored with those eval protocols
(each process its own shard), which must not depend on the process count either.
"""

import argparse
import json
import os


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--devices', type=int, required=True)
  parser.add_argument('--out', required=True)
  parser.add_argument('--data', required=True)
  parser.add_argument('--num_processes', type=int, default=1)
  parser.add_argument('--process_id', type=int, default=0)
  parser.add_argument('--coordinator', default=None)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--protocols', default='',
                      help='also score these eval protocols (comma-separated)')
  parser.add_argument('--restore', action='store_true',
                      help='restore the checkpoint in --out and only evaluate')
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_num_cpu_devices', args.devices)
  if args.num_processes > 1:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sppnet_jax.classification import evaluate, train  # pylint: disable=g-import-not-at-top
  from sppnet_jax.core import checkpoints, parallel  # pylint: disable=g-import-not-at-top
  from tests.helpers import small_config  # pylint: disable=g-import-not-at-top

  config = small_config(args.data, batch_size=16, eval_batch_size=16,
                        keep_latest_checkpoints=1)
  run = train.setup(config)
  store = checkpoints.Checkpoints(os.path.join(args.out, 'workdir'), run.config,
                                  run.info.class_names)
  state = run.state
  if args.restore:
    state, _ = store.restore(store.latest, store.latest_step(), state)
  else:
    steps = train.compile_train_steps(run)
    parallel.sync_processes('compiled')
    rows = 16 // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    for step in range(args.steps):
      size = config.train_sizes[step % 2]
      rng = np.random.default_rng(step)
      batch = {'image': rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8),
               'label': rng.integers(0, 10, (16,), dtype=np.int32)}
      local = {k: v[mine] for k, v in batch.items()}
      state, _ = steps[size](state, parallel.to_global(local, run.mesh))
    store.save_latest(args.steps, state, force=True)
  store.wait()
  eval_step = evaluate.make_eval_step(run.model, run.mesh, run.state_sharding.params)
  parallel.sync_processes('evaluate')
  metrics = evaluate.evaluate(eval_step, state.params, run.config, run.mesh)
  store.close()
  by_protocol = {}
  for protocol in filter(None, args.protocols.split(',')):
    view_config = run.config.copy_and_resolve_references()
    # feature_map_views take scales of at least eval_size (64).
    view_config.eval.update(protocol=protocol, scales=(64, 90) if protocol ==
                            'feature_map_views' else (48, 72))
    by_protocol[protocol] = evaluate.evaluate_views(run.model, state.params,
                                                    view_config)
  if jax.process_index() == 0:
    params = jax.device_get(state.params)
    flat = {'/'.join(str(getattr(k, 'key', k)) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_leaves_with_path(params)}
    tag = 'restored' if args.restore else 'trained'
    np.savez(os.path.join(args.out, f'{tag}_params.npz'), **flat)
    with open(os.path.join(args.out, f'{tag}_metrics.json'), 'w') as f:
      json.dump(metrics, f)
    with open(os.path.join(args.out, f'{tag}_protocols.json'), 'w') as f:
      json.dump(by_protocol, f)


if __name__ == '__main__':
  main()
