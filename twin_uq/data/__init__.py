"""twin_uq.data."""
