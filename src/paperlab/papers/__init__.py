"""One package per paper. Each exports its public API and, in ``claims.py``, ``PAPER``."""
