"""A trained detector applied: the fc head at test time (`head.py`), the
per-class linear models (SVM classifiers, box regressors;
`linear_models.py`), the detector (`detector.py`), NMS (`nms.py`), drawing
(`drawing.py`), the detector on whole images as Python calls it
(`image_detector.py`: `sppnet_jax.load_detector`), --mode=detect over it
(`detect_mode.py`), --mode=export of it (`export.py`) and the jax-only loader
of the export (`exported.py`). Imports the features
and proposals rooms and the leaf modules, never training."""
