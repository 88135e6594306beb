"""Alias of configs/classification/tiny.py, where the recipe lives now."""

from configs.classification.tiny import get_config  # pylint: disable=unused-import
