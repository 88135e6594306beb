"""Task-independent data pieces: sources (image folders, TFDS) sharded per
process, image decoding and resizing, corrupt-image accounting, and padding
batches with a mask. Nothing here knows about crops, labels' meaning or boxes:
the tasks' input pipelines are built from these."""
