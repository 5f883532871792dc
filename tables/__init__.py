"""State: the per-document aggregate table, its pure transitions and its web views.

``document_state``, ``outcome`` and ``rendering`` are plain Python (no broker needed);
``documents`` and ``views`` register the Faust table and pages on the app.
"""
