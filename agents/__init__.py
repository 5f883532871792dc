"""The stream processors. Importing this package registers every agent, table and view on the app.

ingest     document-received → validate → document-submissions (by document id)
extract    document-submissions → docling → picture-requests + document-updates
describe   picture-requests  → Gemini  → document-updates
aggregate  document-updates  → documents + document_parts tables → document-enriched | document-failed
control    budget-control    → every worker follows it → its share of the new budget
"""

from docsight import web  # noqa: F401  (registers the worker's web views)
from docsight import status_page  # noqa: F401  (registers the status page at / and /status)
from docsight.app import settings

if settings.role in ("all", "ingest"):
    from docsight.tables import views  # noqa: F401  (registers the table's web views)

    from . import aggregate, ingest  # noqa: F401
if settings.role in ("all", "vision"):
    from . import control, describe  # noqa: F401
