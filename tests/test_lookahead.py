"""lookahead.chain_ahead: order, opening ahead, dropping off the main thread."""

import threading

import pytest

from sppnet_jax import lookahead


class _Recorder:
  """Iterators that note when and on which thread they were opened/dropped."""

  def __init__(self):
    self.events = []

  def part(self, name, items, length=None):
    recorder = self

    class Items:
      def __init__(self):
        recorder.events.append(('open', name, threading.current_thread().name))
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


def test_items_in_order_next_part_opened_ahead_and_dropped_off_main_thread():
  recorder = _Recorder()
  parts = [recorder.part('a', [1, 2, 3]), recorder.part('b', []),
           recorder.part('c', [4, 5])]
  got = []
  for item in lookahead.chain_ahead(parts, lead_seconds=float('inf')):
    got.append(item)
    if item == 2:
      # 'b' is opened once the pace of 'a' is known (2 items), before 'a' ends.
      for _ in range(100):
        if ('open', 'b') in [e[:2] for e in recorder.events]:
          break
        threading.Event().wait(0.01)
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
  chain = lookahead.chain_ahead(parts, lead_seconds=0.25)
  got = []
  for item in chain:
    got.append(item)
    if item < 5:
      threading.Event().wait(0.1)  # 0.1 s per item of 'a'
  assert got == list(range(7))
  names = [e[:2] for e in recorder.events]
  # 4 items left (0.4 s) is too early; 2 left (0.2 s) is within the lead.
  assert names.index(('open', 'b')) > names.index(('yield', 3))
  assert names.index(('open', 'b')) < names.index(('yield', 5))


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
