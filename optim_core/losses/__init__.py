"""Losses: one protocol over (K, d) batches, several ways to define one."""
