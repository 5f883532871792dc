"""The ``docsight`` subcommands, one module each.

Every module has ``register(subcommands)``, which adds its parser and sets
``run=function(args) -> exit code`` as the parser's default.
"""

from . import audit, bench, chaos, control, demo, estimate, gemini_server, loadtest, settings, status, submit, worker

COMMANDS = [worker, demo, gemini_server, settings, estimate, control, bench, audit, submit, status, loadtest, chaos]
