"""twin_uq.inference."""
