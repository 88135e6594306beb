"""Detection data: the sources (TFDS VOC, COCO-format folders; `sources.py`),
the generated embedded set (`embedded.py`) and the offline preparation of
TFDS VOC (`prepare_voc.py`). Imports `core.data`, `detection.config` and
`detection.boxes` only."""
