"""Alias of configs/classification/zfnet.py, where the recipe lives now."""

from configs.classification.zfnet import get_config  # pylint: disable=unused-import
