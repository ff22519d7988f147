"""twin_uq.validate."""
