"""Stopping a training loop cleanly on SIGTERM (or a preemption notice): the
loop notes the request, saves at the end of its step and raises `Preempted`;
the same command then resumes from that checkpoint. Shared by classification
training and detection fine-tuning."""

import signal
import threading

import jax


class Preempted(Exception):
  """Training stopped on SIGTERM (or a preemption notice) after saving."""


class StopRequest:
  """Notes a SIGTERM so that the loop saves and stops at the end of its step.

  Multi-process runs leave the signal to JAX's preemption notifier instead, and
  ask Orbax (`reached_preemption`), so that every process stops at the same step.
  """

  def __init__(self):
    self.received = False
    self._previous = None
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._note)

  def _note(self, signum, frame):
    del signum, frame
    self.received = True

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
