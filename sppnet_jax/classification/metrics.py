"""The clu metric collections of training and evaluation, made from the sums the
jitted steps return (steps.py), merged over steps and computed for reporting."""

import flax
from clu import metrics


def _average(sums: dict, name: str) -> metrics.Average:
  return metrics.Average(total=sums[name], count=sums['count'])


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
  loss: metrics.Average.from_output('loss')
  top1: metrics.Average.from_output('top1')
  top5: metrics.Average.from_output('top5')
  learning_rate: metrics.LastValue.from_output('learning_rate')

  @classmethod
  def from_sums(cls, sums: dict) -> 'TrainMetrics':
    return cls.empty().replace(
        loss=_average(sums, 'loss'), top1=_average(sums, 'top1'),
        top5=_average(sums, 'top5'),
        learning_rate=metrics.LastValue(value=sums['learning_rate']))


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
  """Averages over the examples whose mask is set; `num_examples` counts them."""
  loss: metrics.Average.from_output('loss')
  top1: metrics.Average.from_output('top1')
  top5: metrics.Average.from_output('top5')

  @classmethod
  def from_sums(cls, sums: dict) -> 'EvalMetrics':
    return cls.empty().replace(loss=_average(sums, 'loss'),
                               top1=_average(sums, 'top1'),
                               top5=_average(sums, 'top5'))

  def compute(self):
    values = super().compute()
    values['num_examples'] = int(self.top1.count)
    return values
