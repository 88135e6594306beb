"""lookahead.chain_ahead: order, opening ahead, dropping off the main thread."""

import threading

import pytest

from sppnet_jax.core import lookahead


class _Recorder:
  """Iterators that note when and on which thread they were opened/dropped."""

  def __init__(self):
    self.events = []
    self.opened = {}  # name -> threading.Event set once it is opened

  def part(self, name, items, length=None):
    recorder = self
    self.opened[name] = threading.Event()

    class Items:
      def __init__(self):
        recorder.events.append(('open', name, threading.current_thread().name))
        recorder.opened[name].set()
        self._items = iter(items)

      def __iter__(self):
        return self

      def __next__(self):
        item = next(self._items)
        recorder.events.append(('yield', item))
        return item

      def __del__(self):
        recorder.events.append(('drop', name, threading.current_thread().name))

    return lookahead.Part(name=name, open=Items,
                          length=len(items) if length is None else length)


# Generous: only a broken chain waits this long (the helper thread opens a part
# in microseconds).
_WAIT_S = 60


def test_items_in_order_next_part_opened_ahead_and_dropped_off_main_thread():
  recorder = _Recorder()
  parts = [recorder.part('a', [1, 2, 3]), recorder.part('b', []),
           recorder.part('c', [4, 5])]
  got = []
  for item in lookahead.chain_ahead(parts, lead_seconds=float('inf')):
    got.append(item)
    if item == 2:
      # 'b' is opened once the pace of 'a' is known (2 items), before 'a' ends.
      assert recorder.opened['b'].wait(_WAIT_S)
  assert got == [1, 2, 3, 4, 5]
  events = recorder.events
  opened = [e for e in events if e[0] == 'open']
  dropped = [e for e in events if e[0] == 'drop']
  assert [e[1] for e in opened] == ['a', 'b', 'c']
  assert sorted(e[1] for e in dropped) == ['a', 'b', 'c']
  main = threading.main_thread().name
  assert all(e[2] != main for e in opened + dropped), events
  # 'b' was open before 'a' yielded its last item.
  assert events.index(('open', 'b', opened[1][2])) < events.index(('yield', 3))


def test_the_next_part_waits_until_the_current_one_is_about_to_end():
  recorder = _Recorder()
  parts = [recorder.part('a', list(range(6))), recorder.part('b', [6])]
  now = [0.0]  # A clock the consumer moves: 0.1 s per item of 'a'.
  chain = lookahead.chain_ahead(parts, lead_seconds=0.25, clock=lambda: now[0])
  got = []
  for item in chain:
    got.append(item)
    if item == 2:  # 3 items (0.3 s) left: too early to open 'b'.
      assert not recorder.opened['b'].is_set()
    if item == 4:  # 2 left (0.2 s) once item 3 was asked for: within the lead.
      assert recorder.opened['b'].wait(_WAIT_S)
    if item < 5:
      now[0] += 0.1
  assert got == list(range(7))
  names = [e[:2] for e in recorder.events]
  assert names.index(('open', 'b')) > names.index(('yield', 2))


@pytest.mark.parametrize('items,length,message', [
    ([1, 2], 3, 'the input pipeline of epoch 7 yielded 2 items instead of 3.'),
    ([1, 2, 3, 4], 3,
     'the input pipeline of epoch 7 yielded more than 3 items instead of 3.'),
])
def test_a_part_of_the_wrong_length_is_an_error(items, length, message):
  recorder = _Recorder()
  chain = lookahead.chain_ahead(
      [recorder.part('the input pipeline of epoch 7', items, length),
       recorder.part('next', [9])])
  with pytest.raises(RuntimeError) as error:
    list(chain)
  assert str(error.value) == message


def test_an_error_while_opening_reaches_the_consumer():
  def fail():
    raise ValueError('no such folder')

  with pytest.raises(ValueError, match='no such folder'):
    list(lookahead.chain_ahead([lookahead.Part('x', fail, 1)]))
