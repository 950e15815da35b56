"""Running the edge's rendered nginx configuration locally (``python -m tools.edge``)."""
