"""twin_uq.simulate."""
