"""A local Gemini-compatible HTTP server for the demo, tests and load tests.

Speaks the real wire format (see shared/notes/gemini-api.md) so the
real google-genai SDK talks to it unchanged, with quotas and scriptable faults.
"""

from .config import GeminiServerConfig
from .faults import ControlError
from .server import GeminiServer, GeminiServerThread, build_arg_parser, main, running_gemini_server

__all__ = [
    "ControlError",
    "GeminiServer",
    "GeminiServerConfig",
    "GeminiServerThread",
    "build_arg_parser",
    "main",
    "running_gemini_server",
]
