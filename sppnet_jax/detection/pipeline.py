"""The detection stages in order, each resuming where it stopped:

  backbone     the classification SPP-net (trained first when the recipe says
               so and it is missing; backbone.py)
  proposals    selective search per image (proposals/job.py)
  features     conv5 of every image at every scale, cached (features/cache.py)
  finetune     fc6-fc8 on pooled regions (training/finetune.py)
  svm          per-class linear SVMs with hard-negative mining
               (training/svm_training.py)
  bbox         per-class box regression (training/box_regression_training.py)
  eval         the test split: VOC07 mAP per class, COCO AP
               (evaluation/scoring.py)

detection.training = 'end_to_end': backbone, proposals, end_to_end
(training/end_to_end.py) and eval, conv5 from the trained conv layers
(`scoring.score_images`), through the same `Detector`.

A stage's result is a set of files in the workdir written whole (per image,
per checkpoint or per model), so `--mode=train` run again after any stop
skips what is done and resumes the stage that was running.

A trained workdir's detector for whole images (the Python API, detect and
export) is `trained.py`'s, on `load_trained`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time

import jax
from absl import logging

from sppnet_jax.core import metric_output
from sppnet_jax.core.parallel import sync_processes
from sppnet_jax.detection.backbone import (Backbone, detector_model,
                                           ensure_backbone)
from sppnet_jax.detection.config import feature_dir, proposal_dir, splits_of
from sppnet_jax.detection.data import sources
from sppnet_jax.detection.evaluation import report, scoring
from sppnet_jax.detection.features.cache import (Conv5Store, LruImageCache,
                                                 cache_settings, compute_conv5)
from sppnet_jax.detection.features.conv5 import MultiScaleConv5
from sppnet_jax.detection.features.pooling import PoolingSettings
from sppnet_jax.detection.inference import svd
from sppnet_jax.detection.inference.head import head_params
from sppnet_jax.detection.inference.detector import Detector
from sppnet_jax.detection.inference.linear_models import (BoxRegressor,
                                                          LinearClassifiers)
from sppnet_jax.detection.proposals import job as proposal_job
from sppnet_jax.detection.proposals.store import ProposalStore
from sppnet_jax.detection.training import (box_regression_training,
                                           end_to_end, finetune, svm_training)
from sppnet_jax.detection.training.split_regions import load_split_regions

MODEL_FOLDER = 'detector'  # WORKDIR/detector/{svm,bbox}.npz


@dataclasses.dataclass
class DetectionRun:
  """What every stage of one run shares: its config and workdir, the
  backbone, the data's class names, the pooling settings and where each
  stage's files are."""
  config: object
  workdir: str
  backbone: Backbone
  class_names: tuple
  pooling: PoolingSettings
  source: object  # the opened data source (data/sources.py); None: no data
  _ground_truth: dict = dataclasses.field(default_factory=dict)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def conv5_store(self, split: str) -> Conv5Store:
    return Conv5Store(feature_dir(self.config, self.workdir, split))

  def proposal_store(self, split: str) -> ProposalStore:
    return ProposalStore(proposal_dir(self.config, self.workdir, split))

  @property
  def model_folder(self) -> str:
    """Where the trained linear models and SVD factors are."""
    return os.path.join(self.workdir, MODEL_FOLDER)

  def model_path(self, name: str) -> str:
    return os.path.join(self.model_folder, name)

  def ground_truth(self, split: str) -> dict:
    """The split's ground truth as scoring takes it, read from the data
    source once per run."""
    if split not in self._ground_truth:
      self._ground_truth[split] = scoring.split_ground_truth(
          self.source, split, self.class_names)
    return self._ground_truth[split]


def open_run(config, workdir: str) -> DetectionRun:
  """The backbone (trained first if the recipe says so) and the data source
  of a run."""
  backbone = ensure_backbone(config)
  source = sources.open_source(config)
  return DetectionRun(config, workdir, backbone, tuple(source.class_names),
                      pooling_of(config, backbone), source)


def pooling_of(config, backbone: Backbone) -> PoolingSettings:
  input_size = (config.detection.input_size
                or max(backbone.config.train_sizes))
  return PoolingSettings.of(config, backbone.config.spp_levels, input_size,
                            backbone.config.architecture)


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


def make_features(run: DetectionRun, splits) -> None:
  """conv5 of every image of `splits` (the training split's also mirrored)."""
  config, backbone = run.config, run.backbone
  conv5 = conv5_of(run)
  for split in splits:
    flip = config.finetune.flip and split == config.train_split
    store = run.conv5_store(split)
    store.record_settings(cache_settings(config, backbone.path, flip))
    examples = sources.decoded_examples(run.source, split,
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count())
    stats = compute_conv5(examples, store, conv5, flip=flip,
                          dtype=config.features.dtype)
    logging.info('conv5 of %s: %d computed (%.1f MB) in %.1f s, %d there.',
                 split, stats.computed, stats.bytes_written / 2**20,
                 stats.seconds, stats.cached)
  sync_processes('detection_features')


def conv5_of(run: DetectionRun) -> MultiScaleConv5:
  """conv5 of whole images at the recipe's scales, by the backbone."""
  return MultiScaleConv5(run.backbone.model, run.backbone.params,
                         run.config.detection.scales,
                         run.config.detection.size_step)


def detector_of(run: DetectionRun, params: dict, *, classifier=None,
                regressor=None, svd_factors=None) -> Detector:
  """The detector of fc6-fc8 `params` with the recipe's test settings."""
  test = run.config.test
  return Detector(detector_model(run.backbone, run.num_classes),
                  params, run.pooling, run.num_classes,
                  classifier=classifier, regressor=regressor,
                  nms_iou=test.nms_iou, max_per_image=test.max_per_image,
                  pre_nms_per_class=test.pre_nms_per_class,
                  batch_boxes=test.batch_boxes, svd_factors=svd_factors)


def is_end_to_end(config) -> bool:
  return config.detection.training == 'end_to_end'


def score(run: DetectionRun, detector: Detector, split: str,
          conv5: MultiScaleConv5 | None = None) -> scoring.SplitScore:
  """The detector's score on a split: cached maps, or images and `conv5`."""
  if conv5 is not None:
    return scoring.score_images(
        detector, conv5, run.source, split, run.proposal_store(split),
        run.ground_truth(split), run.class_names,
        process_index=jax.process_index(), process_count=jax.process_count())
  return scoring.score_split(
      detector, run.conv5_store(split), run.proposal_store(split),
      run.ground_truth(split), run.class_names,
      process_index=jax.process_index(), process_count=jax.process_count())


def run_finetuning(run: DetectionRun) -> None:
  config = run.config
  train = config.train_split
  store = run.conv5_store(train)
  regions = load_split_regions(
      store, run.proposal_store(train),
      add_ground_truth=config.finetune.add_ground_truth,
      use_difficult=config.detection.use_difficult)
  maps = LruImageCache(store, regions.image_ids,
                       config.features.memory_mb * 2**20)

  def validation_map(params):
    return score(run, detector_of(run, params),
                 config.finetune.val_split).voc['map']

  finetune.run_finetuning(
      config, run.workdir, run.backbone, run.class_names, regions,
      maps, run.pooling,
      validate=validation_map if config.finetune.val_split else None)


def end_to_end_detector(run: DetectionRun, params: dict, *,
                        svd_factors=None) -> tuple[Detector, MultiScaleConv5]:
  """The detector of end-to-end `params` and the conv5 of its own conv
  layers (`end_to_end.test_time_parts`)."""
  if svd_factors is not None:  # on the device once, for both users
    svd_factors = jax.device_put(svd_factors)
  head, regressor, conv5 = end_to_end.test_time_parts(
      run.config, run.backbone, run.num_classes, params, svd_factors)
  return detector_of(run, head, regressor=regressor,
                     svd_factors=svd_factors), conv5


def run_end_to_end(run: DetectionRun) -> None:
  """The end_to_end stage (resumes; skipped when done)."""
  config = run.config
  train = config.train_split
  images = end_to_end.load_train_images(
      run.source, train, run.proposal_store(train),
      add_ground_truth=config.end_to_end.add_ground_truth,
      use_difficult=config.detection.use_difficult)
  val = config.end_to_end.val_split

  def validation_map(params):
    detector, conv5 = end_to_end_detector(run, params)
    return score(run, detector, val, conv5).voc['map']

  end_to_end.run_end_to_end(config, run.workdir, run.backbone,
                            run.class_names, images,
                            validate=validation_map if val else None)


def train_models(run: DetectionRun) -> None:
  """The SVM and box-regression stages (each skipped when its file exists)."""
  config = run.config
  params, step = finetune.final_params(config, run.workdir,
                                       run.backbone, run.class_names)
  detector = detector_of(run, params)
  train = config.train_split
  common = dict(use_difficult=config.detection.use_difficult,
                num_classes=run.num_classes)
  if config.detection.classifier == 'svm':
    path = run.model_path('svm.npz')
    if not os.path.exists(path):
      start = time.perf_counter()
      svms = svm_training.train_classifiers(
          detector, run.conv5_store(train), run.proposal_store(train),
          config.svm, seed=config.seed,
          memory_bytes=config.features.memory_mb * 2**20, **common)
      if jax.process_index() == 0:
        svms.save(path)
      logging.info('SVMs on %s of step %d trained in %.1f s.', config.svm.layer,
                   step, time.perf_counter() - start)
  if config.bbox_regression.enabled:
    path = run.model_path('bbox.npz')
    if not os.path.exists(path):
      start = time.perf_counter()
      model = box_regression_training.train_box_regressor(
          detector, run.conv5_store(train), run.proposal_store(train),
          config.bbox_regression, **common)
      if jax.process_index() == 0:
        model.save(path)
      logging.info('Box regressors trained in %.1f s.',
                   time.perf_counter() - start)
  sync_processes('detection_models')


def load_detector(run: DetectionRun) -> tuple[Detector, int]:
  """The trained detector of the workdir, as the config asks for it."""
  return load_trained(run)[:2]


def load_trained(
    run: DetectionRun) -> tuple[Detector, int, MultiScaleConv5 | None]:
  """`load_detector` and, for end-to-end training, the conv5 of the
  detector's own conv layers (None: the backbone's, `conv5_of`)."""
  config = run.config
  if is_end_to_end(config):
    params, step = end_to_end.final_params(config, run.workdir, run.backbone,
                                           run.class_names)
    detector, conv5 = end_to_end_detector(run, params)
    factors = svd_factors(run, head_params(params), step, detector, conv5)
    if factors is not None:  # its conv5 is the same: the first one is kept
      detector = end_to_end_detector(run, params, svd_factors=factors)[0]
    return detector, step, conv5
  params, step = finetune.final_params(config, run.workdir,
                                       run.backbone, run.class_names)
  models = dict(
      classifier=(LinearClassifiers.load(run.model_path('svm.npz'))
                  if config.detection.classifier == 'svm' else None),
      regressor=(BoxRegressor.load(run.model_path('bbox.npz'))
                 if config.bbox_regression.enabled else None))
  detector = detector_of(run, params, **models)
  factors = svd_factors(run, params, step, detector)
  if factors is not None:
    detector = detector_of(run, params, svd_factors=factors, **models)
  return detector, step, None


def svd_factors(run: DetectionRun, params: dict, step: int,
                detector: Detector,
                conv5: MultiScaleConv5 | None = None) -> dict | None:
  """The low-rank fc6/fc7 (`svd.factor_head`) of the head `params` of step
  `step` at config.test.svd_ranks, read from the workdir or computed and
  written once (`svd.load_or_factor`); None when the ranks are (). The
  'responses' method samples the first test.svd_images images of the
  training split: their conv5 by `conv5` (the end-to-end detector's own
  layers) or the backbone's, pooled as `detector` pools regions."""
  test = run.config.test
  ranks = svd.scaled_ranks(test.svd_ranks, run.backbone.model.fc_dim)
  if not ranks:
    return None

  def sample():
    start = time.perf_counter()
    images = _images_with_proposals(run, run.config.train_split,
                                    conv5 or conv5_of(run), test.svd_images)
    responses = svd.fc6_responses(
        lambda *image: detector.region_outputs(*image, ('pool5',))['pool5'],
        params['fc6']['kernel'], images, test.svd_regions,
        seed=run.config.seed)
    logging.info('SVD samples: %d regions of the first %d training images in '
                 '%.1f s.', len(responses), test.svd_images,
                 time.perf_counter() - start)
    return responses

  return svd.load_or_factor(
      run.model_folder, params, ranks, step,
      sample=sample if test.svd_method == 'responses' else None,
      samples=f'{test.svd_images}x{test.svd_regions}',
      write=jax.process_index() == 0)


def _images_with_proposals(run: DetectionRun, split: str,
                           conv5: MultiScaleConv5, count: int):
  """(conv5 maps, proposals, height, width) of the first `count` readable
  images of `split`."""
  proposals = run.proposal_store(split)
  for example in itertools.islice(sources.decoded_examples(run.source, split),
                                  count):
    height, width = example.image.shape[:2]
    yield (conv5(example.image),
           proposals.load(example.image_id, (height, width)), height, width)


def evaluate(run: DetectionRun) -> scoring.SplitScore:
  """Scores the test split; writes WORKDIR/eval/detection.json and the
  TensorBoard scalars; returns the score."""
  config = run.config
  detector, step, conv5 = load_trained(run)
  result = score(run, detector, config.eval_split, conv5)
  if jax.process_index() == 0:
    folder = os.path.join(run.workdir, 'eval')
    os.makedirs(folder, exist_ok=True)
    writer = metric_output.open_writer(folder)
    report.write(os.path.join(folder, 'detection.json'), writer, step,
                 result.voc, result.coco)
    writer.flush()
  return result


def train(config, workdir: str) -> scoring.SplitScore:
  """Every stage in order (each resumes), then the test split's score."""
  os.makedirs(workdir, exist_ok=True)
  sources.prepare_data(config)
  run = open_run(config, workdir)
  make_proposals(config, workdir)
  if is_end_to_end(config):
    run_end_to_end(run)
    return evaluate(run)
  make_features(run, splits_of(config))
  run_finetuning(run)
  train_models(run)
  return evaluate(run)


def evaluate_only(config, workdir: str) -> scoring.SplitScore:
  """--mode=eval: the test split's proposals and conv5 (made if missing;
  also the training split's proposals when the SVD samples it), then its
  score."""
  sources.prepare_data(config)
  run = open_run(config, workdir)
  samples_training_images = bool(config.test.svd_ranks) and (
      config.test.svd_method == 'responses')
  make_proposals(config, workdir, [config.eval_split] + (
      [config.train_split] if samples_training_images else []))
  if not is_end_to_end(config):
    make_features(run, [config.eval_split])
  return evaluate(run)


def summary_line(result: scoring.SplitScore) -> str:
  return (f'test VOC07 mAP {100 * result.voc["map"]:.2f}%, COCO AP '
          f'{100 * result.coco["ap"]:.2f}% (AP50 {100 * result.coco["ap50"]:.2f}'
          f'%) on {result.num_images} images, {result.num_detections} '
          'detections')
