"""SPP-net object detection (the paper's section 4): conv5 of a whole image once,
spatial pyramid pooling of ~2,000 region proposals on it, fine-tuned fc layers,
SVMs, box regression, NMS and VOC/COCO evaluation.

Built so far: boxes (the one box convention), data (TFDS VOC, COCO folders, the
embedded set), proposals and proposal_job (--mode=proposals), features
(multi-scale conv5, boxes pooled at their scale), backbone, sampling, svm,
box_regression, nms, evaluation and report. It builds on `sppnet_jax.core`
(the network's `features` / `pool5` / `head` stages, `core.data`'s sources,
corrupt-image accounting and padding with masks).
"""
