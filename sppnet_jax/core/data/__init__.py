"""Task-independent data pieces: sources (image folders, TFDS) sharded per
process, image decoding and resizing, corrupt-image accounting, padding
batches with a mask, and the generated sets' drawing and build-once steps. Nothing here knows about crops, labels' meaning or boxes:
the tasks' input pipelines are built from these."""
