"""The vectorised step engine: many runs advanced together as one (K, d) array."""
