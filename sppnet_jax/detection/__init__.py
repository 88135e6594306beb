"""SPP-net object detection (the paper's section 4): conv5 of a whole image once,
spatial pyramid pooling of ~2,000 region proposals on it, fine-tuned fc layers,
SVMs, box regression, NMS and VOC/COCO evaluation.

Empty for now: the work is tracked in the project's detection issues, and it
builds on `sppnet_jax.core` (the network's `features` / `pool5` / `head` stages,
`core.data`'s sources, corrupt-image accounting and padding with masks).
"""
