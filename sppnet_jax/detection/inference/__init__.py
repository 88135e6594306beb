"""A trained detector applied: the fc head at test time (`head.py`), the
per-class linear models (SVM classifiers, box regressors;
`linear_models.py`), the detector (`detector.py`), NMS (`nms.py`), drawing
(`drawing.py`) and --mode=detect (`detect_mode.py`). Imports the features
and proposals rooms and the leaf modules, never training."""
