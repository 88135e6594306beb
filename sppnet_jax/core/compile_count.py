"""Counting XLA compilations, for tests and benchmarks that bound them.

JAX logs 'Compiling jit(NAME) ...' for every compilation when `jax_log_compiles`
is on, whether or not the persistent compilation cache then serves the result,
so the count does not depend on the cache's state.
"""

import contextlib
import logging
import re

import jax


class _CompileLog(logging.Handler):

  def __init__(self):
    super().__init__(logging.DEBUG)
    self.names = []

  def emit(self, record):
    match = re.search(r'^Compiling jit\((\w+)\)', record.getMessage())
    if match:
      self.names.append(match.group(1))


@contextlib.contextmanager
def compilations():
  """Yields a list that receives the name of every function compiled inside."""
  log = _CompileLog()
  jax_logger = logging.getLogger('jax')
  jax_logger.addHandler(log)
  previous = jax.config.jax_log_compiles
  jax.config.update('jax_log_compiles', True)
  try:
    yield log.names
  finally:
    jax.config.update('jax_log_compiles', previous)
    jax_logger.removeHandler(log)
