"""twin_uq.testing."""
