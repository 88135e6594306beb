"""The detection stages in order, each resuming where it stopped:

  backbone     the classification SPP-net (trained first when the recipe says
               so and it is missing)
  proposals    selective search per image (proposal_job.py)
  features     conv5 of every image at every scale, cached (feature_cache.py)
  finetune     fc6-fc8 on pooled regions (finetune.py)
  svm          per-class linear SVMs with hard-negative mining
  bbox         per-class box regression
  eval         the test split: VOC07 mAP per class, COCO AP

A stage's result is a set of files in the workdir written whole (per image,
per checkpoint or per model), so `--mode=train` run again after any stop
skips what is done and resumes the stage that was running.
"""

from __future__ import annotations

import dataclasses
import os
import runpy
import time

import jax
from absl import logging
from clu import metric_writers

from sppnet_jax.core.parallel import sync_processes
from sppnet_jax.detection import (classifier_training, data, feature_cache,
                                  finetune, proposal_job, report, scoring)
from sppnet_jax.detection.backbone import Backbone, load_backbone
from sppnet_jax.detection.config import feature_dir, proposal_dir, splits_of
from sppnet_jax.detection.detector import Detector, LinearClassifiers
from sppnet_jax.detection.features import MultiScaleConv5
from sppnet_jax.detection.proposals import ProposalStore
from sppnet_jax.detection.regions import (PoolingSettings, load_split_regions)
from sppnet_jax.errors import CheckpointNotFoundError, ConfigError

MODELS = 'detector'  # WORKDIR/detector/{svm,bbox}.npz


@dataclasses.dataclass
class Context:
  """What every stage of one run shares."""
  config: object
  workdir: str
  backbone: Backbone
  class_names: tuple
  pooling: PoolingSettings

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def conv5_store(self, split: str) -> feature_cache.Conv5Store:
    return feature_cache.Conv5Store(feature_dir(self.config, self.workdir,
                                                split))

  def proposal_store(self, split: str) -> ProposalStore:
    return ProposalStore(proposal_dir(self.config, self.workdir, split))

  def model_path(self, name: str) -> str:
    return os.path.join(self.workdir, MODELS, name)


def ensure_backbone(config) -> Backbone:
  """The backbone checkpoint, trained first with `backbone_recipe` when the
  recipe allows it and there is none."""
  path = config.detection.backbone
  if not path:
    raise ConfigError('detection needs a classification SPP-net: set '
                      '--config.detection.backbone to its workdir.')
  try:
    return load_backbone(path)
  except CheckpointNotFoundError:
    if not config.detection.train_backbone:
      raise
  recipe = config.detection.backbone_recipe
  logging.info('No backbone at %s: training it first with %s.', path, recipe)
  if not os.path.isfile(recipe):
    raise ConfigError(f'config.detection.backbone_recipe={recipe!r} is not a '
                      'file: run from the repository root or give its path.')
  from sppnet_jax.classification import train  # pylint: disable=g-import-not-at-top
  classification = runpy.run_path(recipe)['get_config']()
  train.train_and_evaluate(classification, path)
  return load_backbone(path)


def open_context(config, workdir: str) -> Context:
  backbone = ensure_backbone(config)
  source = data.open_source(config)
  input_size = (config.detection.input_size
                or max(backbone.config.train_sizes))
  pooling = PoolingSettings.of(config, backbone.config.spp_levels, input_size)
  return Context(config, workdir, backbone, tuple(source.class_names), pooling)


def make_proposals(config, workdir: str, splits=None) -> list:
  """This process's share of the proposals of `splits` (default: all the
  run reads), then a barrier; returns proposal_job's reports."""
  reports = proposal_job.make_proposals(
      config, workdir, process_index=jax.process_index(),
      process_count=jax.process_count(), splits=splits)
  for r in reports:
    logging.info('Proposals of %s: %d images (%d computed, %d there), %d '
                 'unreadable skipped.', r.split, r.images, r.computed, r.cached,
                 r.skipped_images)
  sync_processes('detection_proposals')
  return reports


def make_features(context: Context, splits) -> None:
  """conv5 of every image of `splits` (the training split's also mirrored)."""
  config, backbone = context.config, context.backbone
  conv5 = MultiScaleConv5(backbone.model, backbone.params,
                          config.detection.scales, config.detection.size_step)
  source = data.open_source(config)
  for split in splits:
    flip = config.finetune.flip and split == config.train_split
    store = context.conv5_store(split)
    store.record_settings(feature_cache.cache_settings(config, backbone.path,
                                                       flip))
    examples = data.decoded_examples(source, split,
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count())
    stats = feature_cache.compute_conv5(examples, store, conv5, flip=flip,
                                        dtype=config.features.dtype)
    logging.info('conv5 of %s: %d computed (%.1f MB) in %.1f s, %d there.',
                 split, stats.computed, stats.bytes_written / 2**20,
                 stats.seconds, stats.cached)
  sync_processes('detection_features')


def detector_of(context: Context, params: dict, *, classifier=None,
                regressor=None) -> Detector:
  test = context.config.test
  return Detector(finetune.detector_model(context.backbone,
                                          context.num_classes),
                  params, context.pooling, context.num_classes,
                  classifier=classifier, regressor=regressor,
                  nms_iou=test.nms_iou, max_per_image=test.max_per_image,
                  pre_nms_per_class=test.pre_nms_per_class,
                  batch_boxes=test.batch_boxes)


def score(context: Context, detector: Detector, split: str):
  return scoring.score_split(
      detector, context.conv5_store(split), context.proposal_store(split),
      context.class_names, process_index=jax.process_index(),
      process_count=jax.process_count())


def run_finetuning(context: Context) -> None:
  config = context.config
  train = config.train_split
  store = context.conv5_store(train)
  regions = load_split_regions(
      store, context.proposal_store(train),
      add_ground_truth=config.finetune.add_ground_truth,
      use_difficult=config.detection.use_difficult)
  maps = feature_cache.MapMemory(store, regions.image_ids,
                                 config.features.memory_mb * 2**20)

  def validation_map(params):
    result = score(context, detector_of(context, params),
                   config.finetune.val_split)
    logging.info('Validation mAP (softmax) %.4f.', result.voc['map'])
    return result.voc['map']

  finetune.run_finetuning(
      config, context.workdir, context.backbone, context.class_names, regions,
      maps, context.pooling,
      validate=validation_map if config.finetune.val_split else None)


def train_models(context: Context) -> None:
  """The SVM and box-regression stages (each skipped when its file exists)."""
  config = context.config
  params, step = finetune.final_params(config, context.workdir,
                                       context.backbone, context.class_names)
  detector = detector_of(context, params)
  train = config.train_split
  common = dict(use_difficult=config.detection.use_difficult,
                num_classes=context.num_classes)
  if config.detection.classifier == 'svm':
    path = context.model_path('svm.npz')
    if not os.path.exists(path):
      start = time.perf_counter()
      svms = classifier_training.train_classifiers(
          detector, context.conv5_store(train), context.proposal_store(train),
          config.svm, memory_bytes=config.features.memory_mb * 2**20,
          **common)
      if jax.process_index() == 0:
        svms.save(path)
      logging.info('SVMs on %s of step %d trained in %.1f s.', config.svm.layer,
                   step, time.perf_counter() - start)
  if config.bbox_regression.enabled:
    path = context.model_path('bbox.npz')
    if not os.path.exists(path):
      start = time.perf_counter()
      model = classifier_training.train_box_regressor(
          detector, context.conv5_store(train), context.proposal_store(train),
          config.bbox_regression, **common)
      if jax.process_index() == 0:
        classifier_training.save_regressor(path, model)
      logging.info('Box regressors trained in %.1f s.',
                   time.perf_counter() - start)
  sync_processes('detection_models')


def load_detector(context: Context) -> tuple[Detector, int]:
  """The trained detector of the workdir, as the config asks for it."""
  config = context.config
  params, step = finetune.final_params(config, context.workdir,
                                       context.backbone, context.class_names)
  classifier = (LinearClassifiers.load(context.model_path('svm.npz'))
                if config.detection.classifier == 'svm' else None)
  regressor = (classifier_training.load_regressor(context.model_path('bbox.npz'))
               if config.bbox_regression.enabled else None)
  return detector_of(context, params, classifier=classifier,
                     regressor=regressor), step


def evaluate(context: Context) -> scoring.SplitScore:
  """Scores the test split; writes WORKDIR/eval/detection.json and the
  TensorBoard scalars; returns the score."""
  config = context.config
  detector, step = load_detector(context)
  result = score(context, detector, config.eval_split)
  if jax.process_index() == 0:
    folder = os.path.join(context.workdir, 'eval')
    os.makedirs(folder, exist_ok=True)
    writer = metric_writers.create_default_writer(folder)
    report.write(os.path.join(folder, 'detection.json'), writer, step,
                 result.voc, result.coco)
    writer.flush()
  return result


def train(config, workdir: str) -> scoring.SplitScore:
  """Every stage in order (each resumes), then the test split's score."""
  os.makedirs(workdir, exist_ok=True)
  data.prepare_data(config)
  context = open_context(config, workdir)
  make_proposals(config, workdir)
  make_features(context, splits_of(config))
  run_finetuning(context)
  train_models(context)
  return evaluate(context)


def evaluate_only(config, workdir: str) -> scoring.SplitScore:
  """--mode=eval: the test split's proposals and conv5 (made if missing),
  then its score."""
  data.prepare_data(config)
  context = open_context(config, workdir)
  make_proposals(config, workdir, [config.eval_split])
  make_features(context, [config.eval_split])
  return evaluate(context)


def summary_line(result: scoring.SplitScore) -> str:
  return (f'test VOC07 mAP {100 * result.voc["map"]:.2f}%, COCO AP '
          f'{100 * result.coco["ap"]:.2f}% (AP50 {100 * result.coco["ap50"]:.2f}'
          f'%) on {result.num_images} images, {result.num_detections} '
          'detections')
