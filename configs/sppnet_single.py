"""Alias of configs/classification/sppnet_single.py, where the recipe lives now."""

from configs.classification.sppnet_single import get_config  # pylint: disable=unused-import
