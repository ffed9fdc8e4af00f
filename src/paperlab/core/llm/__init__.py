"""The LLM layer: OpenAI-compatible endpoints named in a TOML config, one async client with
concurrency limits, retries, a persistent cache and cost accounting, resumable JSONL runs, and
`paperlab serve` for paperlab's own models (the root README: "LLMs: real endpoints")."""

from paperlab.core.llm.cache import RequestCache
from paperlab.core.llm.client import Completion, EndpointError, LLMClient, TokenLogprob
from paperlab.core.llm.config import ConfigError, LLMConfig, ModelSpec, load_config, parse_config
from paperlab.core.llm.results import JsonlResults, map_to_jsonl, read_jsonl
from paperlab.core.llm.usage import UsageTracker

__all__ = [
    "Completion",
    "ConfigError",
    "EndpointError",
    "JsonlResults",
    "LLMClient",
    "LLMConfig",
    "ModelSpec",
    "RequestCache",
    "TokenLogprob",
    "UsageTracker",
    "load_config",
    "map_to_jsonl",
    "parse_config",
    "read_jsonl",
]
