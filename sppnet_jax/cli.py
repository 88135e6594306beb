"""Command-line pieces that are not a task's: one-line messages for unknown
--config fields, nested ones included, with the close match."""

import difflib

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
