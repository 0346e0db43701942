"""Symbolic losses: parse user text safely, differentiate exactly, evaluate with NumPy."""
