"""Per-epoch iterators chained so that an epoch boundary costs the training nothing.

A tf.data iterator is slow to start: nothing is decoded before it is opened, so
its first batch waits for the files to be listed or opened, the shuffle buffer to
fill and a batch of images to be decoded (0.1-0.2 s on the embedded set, more on
TFDS shards). It can also be slow to stop: dropping it joins its threads, now and
then waiting ~0.6 s for the autotuner. Opened and dropped one after the other, the
training would stall at every epoch boundary, for seconds with ImageNet from
TFDS (the shuffle buffer of 16k encoded images is filled first). `chain_ahead`
opens each next iterator on a helper thread shortly before the current one ends,
and drops the finished one there as well.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Any, Callable, Iterable, Iterator


@dataclasses.dataclass(frozen=True)
class Part:
  """One iterator of a chain: `open()` makes it; it must yield exactly `length`
  items (`name` says which part fell short, in the error)."""
  name: str
  open: Callable[[], Iterator[Any]]
  length: int


def chain_ahead(parts: Iterable[Part], lead_seconds: float = 60.0,
                clock: Callable[[], float] = time.perf_counter) -> Iterator[Any]:
  """Yields the items of every part in turn.

  Part k+1 is opened on a helper thread once part k is expected to end within
  `lead_seconds` (from the pace of its items so far), so that it is warm when
  part k ends, without holding two pipelines' buffers (a shuffle buffer of
  encoded images, prefetched batches) for a whole epoch. Part k is then dropped
  on that thread. Raises RuntimeError when a part yields fewer or more items
  than its `length`. `clock` paces the parts (seconds; tests pass their own).
  """
  parts = iter(parts)
  with concurrent.futures.ThreadPoolExecutor(
      1, thread_name_prefix='open_ahead') as pool:

    def open_next():
      part = next(parts, None)
      return None if part is None else (part, pool.submit(part.open))

    upcoming = open_next()
    while upcoming is not None:
      part, opening = upcoming
      held = [opening.result()]
      # The future holds the iterator too: let go of it.
      upcoming, opening, count = None, None, 0
      for item in held[0]:
        count += 1
        if count > part.length:
          break
        if count == 1:
          first = clock()
        elif upcoming is None:
          per_item = (clock() - first) / (count - 1)
          if (part.length - count) * per_item <= lead_seconds:
            upcoming = open_next()
        yield item
      if upcoming is None:  # A part too short to pace.
        upcoming = open_next()
      # The helper thread drops the last reference (after opening the next).
      pool.submit(held.clear)
      del held
      if count != part.length:
        raise RuntimeError(
            f'{part.name} yielded {"more than " if count > part.length else ""}'
            f'{min(count, part.length)} items instead of {part.length}.')
