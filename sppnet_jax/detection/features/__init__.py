"""Region features: conv5 of whole images at several scales (`conv5.py`),
each box pooled at its scale with the padding policy that bounds the
compilations (`pooling.py`), and the per-image conv5 cache (`cache.py`).
Imports `core` and the leaf modules only."""
