"""The ``docsight`` subcommands, one module each.

Every module has ``register(subcommands)``, which adds its parser and sets
``run=function(args) -> exit code`` as the parser's default.
"""

from . import demo, gemini_server, worker

COMMANDS = [worker, demo, gemini_server]
