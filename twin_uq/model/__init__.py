"""twin_uq.model."""
