"""Training the detector's parts after the backbone: region labels and the
fine-tuning mini-batches (`sampling.py`, `split_regions.py`), the jitted
fine-tuning step and its loop (`finetune_step.py`, `finetune.py`), SVMs with
hard-negative mining beside their driver (`svm.py`, `svm_training.py`), box
regression beside its driver (`box_regression.py`,
`box_regression_training.py`), with the shared region features
(`region_features.py`) and feature scale (`feature_scale.py`). Imports every
room below it (inference for the detector's region features), never
evaluation or the pipeline."""
