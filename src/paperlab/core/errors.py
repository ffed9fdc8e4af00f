"""The two exceptions every layer may raise (core included): a user's mistake, and a claim that
cannot run here. They live in core so that core never imports the harness above it."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for. The CLI prints it as one line and exits 2."""


class SkipClaim(Exception):
    """Raised by a claim's run when an external resource is missing (``skipped (needs X)``)."""
