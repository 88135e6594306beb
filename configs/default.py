"""Alias of configs/classification/default.py, where the recipe lives now."""

from configs.classification.default import get_config  # pylint: disable=unused-import
