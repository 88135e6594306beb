"""Region proposals: selective search and the paper's ranking
(`selective_search.py`), the per-image store, which is also the format of
user-supplied proposals (`store.py`), and the parallel resumable job that
fills it for a run's splits (`job.py`). Imports the data room, `boxes`,
`stage_files` and `config` only."""
