"""The chat format of paperlab's own small models (what `paperlab serve` applies to messages).

Real servers apply their model's own template; ours is deliberately plain so a byte-level model
learns it in a few hundred steps:

    system: <content>
    user: <content>
    assistant: <reply><EOS>

A model directory servable by `paperlab serve` holds `model.safetensors` (a core Llama) and
`paperlab_chat.json` naming its tokenizer and template.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

TEMPLATE = "paperlab-v1"
ROLES = ("system", "user", "assistant")
META_FILE = "paperlab_chat.json"


def render_chat(
    messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
) -> str:
    """Messages -> the prompt text of the `paperlab-v1` template."""
    parts = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValueError(f"message {i}: role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be a string")
        parts.append(f"{role}: {content}\n")
    if add_generation_prompt:
        parts.append("assistant: ")
    return "".join(parts)


@dataclass(frozen=True)
class ChatModelInfo:
    """`paperlab_chat.json`: what `paperlab serve` needs besides the weights."""

    model_id: str
    tokenizer: str = "byte"  # ByteTokenizer(special_tokens=True): BOS 256, EOS 257
    chat_template: str = TEMPLATE

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / META_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ChatModelInfo:
        path = Path(directory) / META_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory}: not a paperlab chat model (no {META_FILE}); "
                "save one with paperlab.core.llm.tiny.save_chat_model"
            )
        try:
            d = json.loads(path.read_text())
            info = cls(**d)
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{path}: malformed ({e})") from None
        if info.tokenizer != "byte" or info.chat_template != TEMPLATE:
            raise ValueError(
                f"{path}: unsupported tokenizer/template {info.tokenizer}/{info.chat_template}"
            )
        return info
