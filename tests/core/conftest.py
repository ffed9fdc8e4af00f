"""Fixtures shared by the tests of tests/core (the LLM layer's live in llm_helpers.py)."""

from llm_helpers import llm_server, tiny_model_dirs  # noqa: F401
