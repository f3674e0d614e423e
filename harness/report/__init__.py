"""Kept for compatibility: only `browser` is left here; the report moved out of the core into the
first-party `report` plugin."""
