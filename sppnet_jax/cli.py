"""Command-line pieces that are not a task's: one-line messages for unknown
--config fields (nested ones included, with the close match), for flags absl
refuses and for a recipe that cannot be loaded; which help was asked for."""

import difflib
import os
import re

import ml_collections


def unknown_config_field(config: ml_collections.ConfigDict, argv, fields_doc: str
                         ) -> str | None:
  """The error for the first --config.A.B=... override that names no field of
  `config` (None if all exist): names the field, suggests the closest one at
  the level where the name stops matching, and says where the fields are."""
  names = [arg.split('=')[0][len('--config.'):] for arg in argv
           if arg.startswith('--config.')]
  for name in names:
    node, parts = config, name.split('.')
    for depth, part in enumerate(parts):
      if isinstance(node, ml_collections.ConfigDict) and part in node:
        node = node[part]
        continue
      parent = '.'.join(parts[:depth])
      prefix = f'--config.{parent}.' if parent else '--config.'
      keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      if not keys:
        return (f'unknown config field --config.{name}: {prefix.rstrip(".")} is '
                f'a value, not a group of fields; the fields are listed in '
                f'{fields_doc}.')
      close = difflib.get_close_matches(part, keys, n=1)
      hint = f'did you mean {prefix}{close[0]}? ' if close else ''
      return (f'unknown config field {prefix}{part}: {hint}the fields are listed '
              f'in {fields_doc}.')
  return None


_HELP_FLAGS = {'help': 'short', 'helpshort': 'short', 'h': 'short', '?': 'short',
               'helpfull': 'full'}


def help_wanted(argv) -> str | None:
  """'short' (--help, -h, --helpshort, -?), 'full' (--helpfull) or None, from
  the flags before a `--`."""
  for arg in argv:
    if arg == '--':
      break
    if arg.startswith('-'):
      name, _, value = arg.lstrip('-').partition('=')
      if name in _HELP_FLAGS and value.lower() not in ('false', '0'):
        return _HELP_FLAGS[name]
  return None


def flag_error(error: Exception, recipe: ml_collections.ConfigDict) -> str:
  """absl's refusal of a flag (unknown, a value of the wrong type, a mode not
  among the choices) as one line; for a --config field, the line names the
  field's type and its value in `recipe`."""
  lines = str(error).strip().splitlines() or [type(error).__name__]
  message = lines[0]
  message = message[len('flag '):] if message.startswith('flag --') else message
  choice = re.match(r'--(\w+)=(.*?): value should be one of <(.*)>$', message)
  if choice:
    name, value, choices = choice[1], choice[2], choice[3].split('|')
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f': did you mean --{name}={close[0]}?' if close else '.'
    return f'--{name}={value} is not one of {", ".join(choices)}{hint}'
  field = re.match(r'--config\.([\w.]+)=(.*?): ', message)
  if field and _kind(_field(recipe, field[1])):
    return _type_message(field[1], field[2], _field(recipe, field[1]))
  return message


def override_type_error(recipe: ml_collections.ConfigDict,
                        config: ml_collections.ConfigDict, argv) -> str | None:
  """The error for the first --config.NAME=VALUE whose value is not a tuple
  of numbers where `recipe` has one (absl checks the scalars' types, but
  ml_collections takes any tuple: ('abc',) for --config.train_sizes=abc)."""
  for arg in argv:
    if not arg.startswith('--config.') or '=' not in arg:
      continue
    name, raw = arg[len('--config.'):].split('=', 1)
    default = _field(recipe, name)
    kind = _kind(default)
    if kind and kind.startswith('a tuple') and not _numbers(
        _field(config, name), integers=kind.endswith('integers')):
      return _type_message(name, raw, default)
  return None


def _field(config, name: str):
  """config.A.B for 'A.B', or None where there is no such field."""
  node = config
  for part in name.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return None
    node = node[part]
  return node


def _numbers(value, *, integers: bool) -> bool:
  kinds = int if integers else (int, float)
  return isinstance(value, (tuple, list)) and all(
      isinstance(v, kinds) and not isinstance(v, bool) for v in value)


def _kind(value) -> str | None:
  if isinstance(value, bool):
    return 'true or false'
  if isinstance(value, int):
    return 'an integer'
  if isinstance(value, float):
    return 'a number'
  if isinstance(value, str):
    return 'a string'
  if value and _numbers(value, integers=True):
    return 'a tuple of integers'
  if value and _numbers(value, integers=False):
    return 'a tuple of numbers'
  return None


def _type_message(name: str, raw: str, default) -> str:
  shown = (f"'{tuple(default)}'" if isinstance(default, (tuple, list))
           else default)
  return (f'--config.{name}={raw} is not {_kind(default)} (the recipe has '
          f'--config.{name}={shown}).')


def recipe_error(path: str, error: Exception) -> str:
  """The one line for a --config recipe file that cannot be loaded."""
  file = path.split(':', 1)[0]
  if not os.path.exists(file):
    why = 'no such file'
  elif os.path.isdir(file):
    why = 'a folder, not a recipe file'
  elif not os.access(file, os.R_OK):
    why = 'not readable (permission denied)'
  else:  # ml_collections' message ends with the OSError.
    why = str(error).strip().splitlines()[-1].strip()
    why = why.split('failure to load: ', 1)[-1]
  return (f'cannot load the recipe --config={path}: {why}; the recipes are '
          'configs/classification/*.py (configs/NAME.py for short), '
          'configs/detection/*.py and configs/transfer/*.py.')
