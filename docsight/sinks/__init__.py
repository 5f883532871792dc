"""Where a document's outcome leaves docsight: the ``Sink`` port and its adapters.

``TopicSink`` (document-enriched / document-failed) is always on: the audit, ``docsight results`` and
every consumer read the topics. ``FolderSink`` (``DOCSIGHT_OUTPUT_DIR``) also writes each outcome as
files. A new sink: a class with ``enriched`` and ``failed``, added to ``agents/resources.outcome_sinks``.
"""

from .base import Sink, Sinks
from .folder import FolderSink, file_name
from .topics import TopicSink

__all__ = ["FolderSink", "Sink", "Sinks", "TopicSink", "file_name"]
