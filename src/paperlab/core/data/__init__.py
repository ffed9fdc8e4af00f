"""Data sources that ship with the machine or are generated on the spot (no downloads)."""
