"""The HTTP service: translates between JSON and optim_core, nothing more."""
