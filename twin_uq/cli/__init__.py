"""twin_uq.cli."""
