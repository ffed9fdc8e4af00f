"""Shared building blocks, one copy each: device/seed helpers, the training loop, the decoder,
data sources. Papers import from here; papers never import each other."""
