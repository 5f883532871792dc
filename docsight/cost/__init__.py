"""Cost control for the vision step: prices, token rules, picture filters, downscaling, estimates, single flight.

Pure building blocks with no Kafka or Gemini dependency, so each is unit-tested alone.
"""

from docsight.cost.downscale import (
    DecompressionBombError,
    ImageRejectedError,
    PreparedImage,
    UnreadableImageError,
    fit_within,
    prepare_for_api,
)
from docsight.cost.estimator import (
    Estimate,
    SampledPicture,
    SavingsReport,
    Step,
    design_note_scenarios,
    estimate_daily_cost,
    estimate_from_pictures,
    render_scenarios,
)
from docsight.cost.filters import Decision, FilterPolicy, PictureFacts, SkipReason, select_pictures
from docsight.cost.prices import (
    DEFAULT_PRICES,
    ModelPrice,
    PriceTable,
    PriceTableError,
    PriceTablePricing,
    UnknownModelError,
    call_cost,
    load_price_table,
)
from docsight.cost.single_flight import SingleFlight

__all__ = [
    "DEFAULT_PRICES", "DecompressionBombError", "Decision", "Estimate", "FilterPolicy",
    "ImageRejectedError", "ModelPrice", "PictureFacts", "PreparedImage", "PriceTable",
    "PriceTableError", "PriceTablePricing", "SampledPicture", "SavingsReport", "SingleFlight", "SkipReason", "Step",
    "UnknownModelError", "UnreadableImageError", "call_cost", "design_note_scenarios",
    "estimate_daily_cost", "estimate_from_pictures", "fit_within", "load_price_table",
    "prepare_for_api", "render_scenarios", "select_pictures",
]
