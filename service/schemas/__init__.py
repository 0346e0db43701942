"""Request and response models; the optimizer and schedule models come from the registries."""
