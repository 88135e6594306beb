"""A transfer run's steps: features of the splits, the SVMs, the scores.

Multi-label sets (`score_multilabel`): SVMs trained on the train split's
features, scored on the test split with VOC classification AP per class and
their mean. Multi-class sets (`score_multiclass`): for each of
`splits.num_splits` random splits of the images (`splits.class_split`), SVMs
on its training images, mean per-class accuracy on its test images; the mean
and standard deviation (numpy's, ddof 0) over the splits.
"""

from __future__ import annotations

import os

import numpy as np

from sppnet_jax.transfer import (config as config_lib, data,
                                                features as feature_lib,
                                                splits, svms, voc_ap)


def view_of(config, backbone) -> feature_lib.View:
  return feature_lib.View(config.view, int(config.size),
                          int(config.full_image_step),
                          bool(backbone.config.get('resize_antialias', False)))


def extract(config, backbone, workdir: str, layers, view: feature_lib.View
            ) -> dict[str, feature_lib.SplitFeatures]:
  """{split name: its features at `layers`} of the config's data, cached in
  WORKDIR/features/ when config.cache_features."""
  if config.dataset in config_lib.MULTILABEL_DATASETS:
    parts = data.multilabel_splits(config)
  elif config.dataset == 'folder':
    parts = (data.folder_images(config.data_dir),)
  else:
    parts = (data.tfds_class_images(config.dataset, config.data_dir,
                                    config.manual_dir),)
  extractor = feature_lib.FeatureExtractor(
      backbone.model, backbone.params, layers,
      pixel_budget=int(config.batch_pixels))
  out = {}
  for part in parts:
    cache_dir = None
    if config.cache_features:
      name = (f'{part.name.replace("+", "_")}-{view.kind}{view.size}-'
              f'{"_".join(layers)}')
      cache_dir = os.path.join(workdir, 'features', name)
    settings = {'backbone': backbone.path, 'backbone_step': backbone.step,
                'dataset': config.dataset, 'data_dir': config.data_dir,
                'split': part.name, 'class_names': list(part.class_names)}
    result = feature_lib.split_features(part.images, extractor, view,
                                        cache_dir=cache_dir,
                                        settings=settings, total=part.total)
    result.class_names = part.class_names
    out[part.name] = result
  return out


def score_multilabel(train: feature_lib.SplitFeatures,
                     test: feature_lib.SplitFeatures, layer: str,
                     config) -> dict:
  """VOC classification AP per class and mAP on `test` of SVMs fitted on
  `train` (`svms.fit_multilabel`); also the C chosen per class."""
  x_train = svms.l2_normalise(train.features[layer])
  x_test = svms.l2_normalise(test.features[layer])
  fitted, chosen = svms.fit_multilabel(
      x_train, train.labels, grid=tuple(config.svm.c_grid),
      folds=int(config.svm.folds), tol=float(config.svm.tol),
      seed=int(config.seed))
  result = voc_ap.voc_cls_map(svms.scores(fitted, x_test), test.labels,
                              test.class_names)
  result['c'] = dict(zip(test.class_names, chosen))
  return result


def score_multiclass(images: feature_lib.SplitFeatures, layer: str,
                     config) -> dict:
  """Mean per-class accuracy of each random split, their mean and std."""
  x = svms.l2_normalise(images.features[layer])
  labels = np.asarray(images.labels, np.int64)
  accuracies, chosen = [], []
  for split in range(int(config.splits.num_splits)):
    train, test = splits.class_split(
        labels, train_per_class=int(config.splits.train_per_class),
        test_per_class=int(config.splits.test_per_class),
        seed=int(config.seed), split=split)
    fitted, classes, c = svms.fit_multiclass(
        x[train], labels[train], grid=tuple(config.svm.c_grid),
        folds=int(config.svm.folds), tol=float(config.svm.tol),
        seed=int(config.seed) + split)
    predicted = svms.predict(fitted, classes, x[test])
    accuracies.append(splits.mean_class_accuracy(predicted, labels[test]))
    chosen.append(c)
  return {'accuracy': float(np.mean(accuracies)),
          'std': float(np.std(accuracies)),
          'split_accuracies': [float(a) for a in accuracies], 'c': chosen}
