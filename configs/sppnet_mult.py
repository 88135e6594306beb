"""Alias of configs/classification/sppnet_mult.py, where the recipe lives now."""

from configs.classification.sppnet_mult import get_config  # pylint: disable=unused-import
