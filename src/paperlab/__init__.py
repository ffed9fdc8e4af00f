"""paperlab: faithful, small, tested implementations of 25 AI papers from spring 2024.

``paperlab list`` shows them; ``paperlab reproduce SLUG`` re-runs a paper's claims in miniature.
"""

__version__ = "0.1.0"
