"""twin_uq.trust."""
