"""Generated validators for docs/schemas/*.schema.json (``make schemas``); see fleetmon.schema."""
