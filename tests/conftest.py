"""Test set-up: the repo root importable, TensorFlow kept off any GPU, and the
`slow` marker for tests that the default suite skips."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
