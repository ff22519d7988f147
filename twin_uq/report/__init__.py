"""twin_uq.report."""
