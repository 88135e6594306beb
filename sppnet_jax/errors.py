"""Errors a user can act on: a wrong flag or config field, missing or unreadable
data, a checkpoint that is absent or does not fit the model, a diverged run.

`main.py` prints exactly these as one line (`error: ...`) and exits with status 2.
Every other exception (a JAX shape error, a bug in this library) keeps its
traceback. Each kind also derives from the builtin exception a library user
would catch for it (ValueError, FileNotFoundError, FloatingPointError).
"""


class UserError(Exception):
  """Something the user can fix; the message says what is wrong and what to do."""


class ConfigError(UserError, ValueError):
  """A config field or flag that is unknown, out of range or inconsistent."""


class DataError(UserError, ValueError):
  """Data that is missing, not prepared, or does not fit the config."""


class CheckpointError(UserError, ValueError):
  """A checkpoint that does not fit the configured model or run."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
  """No checkpoint where one was asked for."""


class TrainingDivergedError(UserError, FloatingPointError):
  """The loss became NaN or infinite; the latest checkpoint is the last good one."""
