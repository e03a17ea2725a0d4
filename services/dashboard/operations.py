"""The dashboard page as an HTTP operation: public, since the data it shows comes from the API with the key
the user gives the page. Not in the OpenAPI document: it is a page, not an API."""

from __future__ import annotations

from aos_core.operations import HttpOperation, Reply

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation("dashboard", "dashboard", ("GET",), None, "services.dashboard.page:serve", "The dashboard page",
                  replies={200: Reply("the page", media_type="text/html")}, include_in_schema=False),
)
