"""Models named in a TOML file (`paperlab.toml`, or `--config FILE`).

    [defaults]                          # optional: applies to every model below
    base_url = "http://127.0.0.1:11434/v1"

    [models.llama3]
    model = "llama3.1:8b"               # the endpoint's own model id
    api_key_env = "OLLAMA_API_KEY"      # the NAME of the variable holding the key, never the key
    price_input_per_1k = 0.0            # USD per 1K prompt tokens
    price_output_per_1k = 0.0           # USD per 1K completion tokens
    max_concurrency = 4                 # requests in flight to this model at once
    capabilities = ["chat", "logprobs"] # chat, raw_completion, logprobs, prompt_logprobs
    timeout = 60                        # seconds per request
    max_retries = 3                     # SDK retries (429, 5xx, dropped connections), with backoff

A model without `api_key_env` is sent the placeholder key "EMPTY" (local servers need none).
Other top-level tables (e.g. `[moa]` naming proposers and an aggregator) are kept in
`LLMConfig.sections` for the papers that read them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

CAPABILITIES = ("chat", "raw_completion", "logprobs", "prompt_logprobs")
DEFAULT_CONFIG = Path("paperlab.toml")


class ConfigError(UserError):
    """A malformed or incomplete LLM config (one line, exit 2 at the CLI)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model on one OpenAI-compatible endpoint."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    price_input_per_1k: float = 0.0
    price_output_per_1k: float = 0.0
    max_concurrency: int = 4
    capabilities: tuple[str, ...] = ("chat",)
    timeout: float = 60.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        where = f"model {self.name!r}"
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: base_url must start with http:// or https://")
        if not self.model:
            raise ConfigError(f"{where}: `model` (the endpoint's model id) is empty")
        if self.max_concurrency < 1:
            raise ConfigError(f"{where}: max_concurrency must be >= 1")
        if self.timeout <= 0 or self.max_retries < 0:
            raise ConfigError(f"{where}: timeout must be > 0 and max_retries >= 0")
        if min(self.price_input_per_1k, self.price_output_per_1k) < 0:
            raise ConfigError(f"{where}: prices must be >= 0")
        if not all(isinstance(c, str) for c in self.capabilities):
            raise ConfigError(f"{where}: capabilities must be a list of strings")
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise ConfigError(
                f"{where}: unknown capabilities {unknown}; known: {', '.join(CAPABILITIES)}"
            )

    def api_key(self) -> str:
        """The key from the environment variable the config names (never stored anywhere)."""
        if not self.api_key_env:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"model {self.name!r}: environment variable {self.api_key_env} is not set "
                f"(export it, or drop api_key_env for a server that needs no key)"
            )
        return key

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.price_input_per_1k + completion_tokens * self.price_output_per_1k
        ) / 1000.0

    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise ConfigError(
                f"model {self.name!r} does not declare the capability {capability!r} "
                f"(its capabilities: {', '.join(self.capabilities)}); add it in the config "
                "if the endpoint supports it"
            )


@dataclass(frozen=True)
class LLMConfig:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    source: str = "<dict>"
    sections: dict[str, Any] = field(default_factory=dict)  # [moa], [poll], ...

    def section(self, name: str) -> dict[str, Any]:
        """A paper's own table (`[moa]`), empty if absent."""
        value = self.sections.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.source}: [{name}] must be a table")
        return dict(value)

    def get(self, name: str) -> ModelSpec:
        if name not in self.models:
            known = ", ".join(self.models) or "none"
            raise ConfigError(f"no model named {name!r} in {self.source} (configured: {known})")
        return self.models[name]

    def __contains__(self, name: str) -> bool:
        return name in self.models


_FIELDS = {f.name: f for f in fields(ModelSpec) if f.name != "name"}
_TYPES: dict[str, tuple[type, ...]] = {
    "base_url": (str,),
    "model": (str,),
    "api_key_env": (str,),
    "price_input_per_1k": (int, float),
    "price_output_per_1k": (int, float),
    "max_concurrency": (int,),
    "capabilities": (list, tuple),
    "timeout": (int, float),
    "max_retries": (int,),
}


def parse_config(data: Mapping[str, Any], source: str = "<dict>") -> LLMConfig:
    """A config from parsed TOML (or any mapping of the same shape)."""
    defaults = data.get("defaults", {})
    models = data.get("models", {})
    if not isinstance(defaults, Mapping) or not isinstance(models, Mapping):
        raise ConfigError(f"{source}: [defaults] and [models.NAME] must be tables")
    if not models:
        raise ConfigError(f"{source}: no models; add a [models.NAME] table with base_url and model")
    specs = {}
    for name, table in models.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: models.{name} must be a table")
        merged = {**defaults, **table}
        for key, value in merged.items():
            if key not in _FIELDS:
                raise ConfigError(
                    f"{source}: models.{name}: unknown key {key!r}; known: {', '.join(_FIELDS)}"
                )
            if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
                raise ConfigError(
                    f"{source}: models.{name}.{key}: wrong type {type(value).__name__}"
                )
        for key in ("base_url", "model"):
            if key not in merged:
                raise ConfigError(f"{source}: models.{name}: missing {key!r}")
        if "capabilities" in merged:
            merged["capabilities"] = tuple(merged["capabilities"])
        try:
            specs[name] = ModelSpec(name=name, **merged)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    sections = {k: v for k, v in data.items() if k not in ("defaults", "models")}
    return LLMConfig(specs, source, sections)


def load_config(path: str | os.PathLike | None = None) -> LLMConfig:
    """Read `path`, or ./paperlab.toml when no path is given."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    if not file.is_file():
        hint = "" if path is not None else " (write one, or pass --config FILE)"
        raise ConfigError(f"LLM config {file}: no such file{hint}")
    try:
        data = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: not valid TOML ({e})") from None
    return parse_config(data, str(file))
