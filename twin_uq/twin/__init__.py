"""twin_uq.twin."""
