"""The learning area's HTTP operations: feedback on decisions (handlers in `services.learning.routes`).

The DPO dataset builder turns decisions plus this feedback into preference pairs.
"""

from __future__ import annotations

from aos_core.api_operations import record_id
from aos_core.operations import HttpOperation, Reply

_ROUTES = "services.learning.routes:"
_DECISION_ID = record_id("decision_id")

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "post_feedback", "decisions/{decision_id}/feedback", ("POST",), "operator", _ROUTES + "post_feedback",
        "Rate a decision: thumbs, a score, or a correction", params=(_DECISION_ID,),
        body="services.learning.feedback:FeedbackCreate", has_body=True,
        replies={201: Reply("recorded", "services.learning.feedback:Feedback")},
        problems=(400, 401, 403, 404, 413, 422)),
    HttpOperation(
        "list_feedback", "decisions/{decision_id}/feedback", ("GET",), "reader", _ROUTES + "list_feedback",
        "The feedback given on a decision", params=(_DECISION_ID,),
        replies={200: Reply("feedback", _ROUTES + "FeedbackList")}, problems=(400, 401, 403, 404)),
)
