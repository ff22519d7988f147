"""twin_uq.audit."""
