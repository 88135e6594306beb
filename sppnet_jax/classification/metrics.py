"""The clu metric collection of evaluation, made from the sums the jitted eval
step returns (steps.py), merged over batches and computed for reporting.
Training's collection is `core.train_loop.TrainMetrics`."""

import flax
from clu import metrics

from sppnet_jax.core.train_loop import average_of


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
  """Averages over the examples whose mask is set; `num_examples` counts them."""
  loss: metrics.Average.from_output('loss')
  top1: metrics.Average.from_output('top1')
  top5: metrics.Average.from_output('top5')

  @classmethod
  def from_sums(cls, sums: dict) -> 'EvalMetrics':
    return cls.empty().replace(loss=average_of(sums, 'loss'),
                               top1=average_of(sums, 'top1'),
                               top5=average_of(sums, 'top5'))

  def compute(self):
    values = super().compute()
    values['num_examples'] = int(self.top1.count)
    return values
