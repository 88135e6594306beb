"""What both tasks share: spatial pyramid pooling, the ZF-5 network and its
layers, the device mesh, the optimizer, checkpoints, the epoch lookahead and the
task-independent data pieces (`core.data`)."""
