"""The VOC devkit's 11-point AP at the recalls where MATLAB's thresholds and
np.arange's differ."""

import numpy as np
import pytest

from sppnet_jax.core.average_precision import (ELEVEN_POINTS, average_precision,
                                               matlab_colon)
from tests.helpers import MATLAB_0_TO_1


def test_thresholds_are_matlabs_value_for_value():
  assert tuple(ELEVEN_POINTS) == MATLAB_0_TO_1
  assert tuple(matlab_colon(0.0, 0.25, 1.0)) == (0.0, 0.25, 0.5, 0.75, 1.0)
  assert tuple(matlab_colon(1.0, 1.0, 4.0)) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize('hits, points', [
    # 5 positives, 3 found first: recall exactly 0.6 at precision 1 reaches
    # t = 0, ..., 0.6: 7 of the 11 points (np.arange's thresholds give 6).
    (3, 7),
    # 10 positives, 7 found first: recall 0.7 reaches t = 0.7: 8 points.
    (7, 8),
])
def test_a_recall_of_exactly_six_or_seven_tenths_reaches_its_threshold(hits,
                                                                       points):
  positives = 5 if hits == 3 else 10
  recall = np.arange(1, hits + 1) / positives
  precision = np.ones(hits)
  assert average_precision(precision, recall) == pytest.approx(points / 11,
                                                               abs=1e-15)
