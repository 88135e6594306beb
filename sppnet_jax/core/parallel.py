"""The device mesh, shardings, and host-local batches turned into global arrays.

One `data` axis over every device of every process: batches are split along it,
parameters and optimizer state are replicated. The configured batch size is global.
"""

import itertools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sppnet_jax.errors import ConfigError

DATA_AXIS = 'data'


def create_mesh() -> Mesh:
  """All devices on one `data` axis. Auto axis types: jit propagates the
  shardings we give it (explicit sharding-in-types is not needed here)."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def local_batch_size(global_batch_size: int, name: str = 'batch_size') -> int:
  """This process's share of a global batch; the global size must split evenly
  over the devices (and so over the processes)."""
  devices = jax.device_count()
  if global_batch_size <= 0 or global_batch_size % devices:
    raise ConfigError(
        f'config.{name}={global_batch_size} must be a positive multiple of the '
        f'{devices} devices: set --config.{name} to a multiple of {devices}.')
  return global_batch_size // jax.process_count()


def to_global(batch: dict, mesh: Mesh) -> dict:
  """Process-local numpy arrays to arrays sharded over the mesh's data axis."""
  sharding = batch_sharding(mesh)
  return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for key, value in batch.items()}


def global_batch_spec(batch: dict, mesh: Mesh) -> dict:
  """ShapeDtypeStructs of the global arrays `to_global` makes of a local batch,
  for ahead-of-time compilation."""
  sharding = batch_sharding(mesh)
  scale = jax.process_count()
  return {key: jax.ShapeDtypeStruct((value.shape[0] * scale,) + value.shape[1:],
                                    value.dtype, sharding=sharding)
          for key, value in batch.items()}


def prefetch_to_mesh(iterator, mesh: Mesh, size: int = 2):
  """Keeps `size` batches already on their way to the devices (device_put is
  asynchronous), so the transfer of the next batch overlaps the current step."""
  queue = []
  for batch in iterator:
    queue.append(to_global(batch, mesh))
    if len(queue) > size:
      yield queue.pop(0)
  yield from queue


_barriers = itertools.count()


def sync_processes(what: str, timeout_s: int = 3600) -> None:
  """Waits until every process gets here, through the coordination service
  (not a device collective), so that one process's slow stretch of host work
  (compiling, opening a data set, a loaded machine) never runs a collective of
  the others into its timeout (gloo's is 30 s on CPU). Every process must call
  it the same number of times, in the same order. Nothing to do with one process."""
  if jax.process_count() > 1:
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    ocp.multihost.sync_global_processes(f'sppnet_jax_{next(_barriers)}_{what}',
                                        timeout=timeout_s)
