"""Pre-query templates: the part of a chat model's format that comes before the user's text.

Magpie (Sec. 2.1, Step 1) sends an aligned model nothing but this prefix as a *raw* completion:
the model, trained to continue its own format, writes a user query. The table below is the one
users serve; the strings (templates, special tokens, stop tokens) follow the official
`configs/model_configs.json` of magpie-align/magpie, where a family is present there, and the
families' published chat templates otherwise (the "post-query" part that closes the user turn
and opens the assistant's, used for multi-turn).

    fam = get_family("llama3")
    fam.pre_query_template   # '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n'
    fam.instruction_stops(newline=True)   # what stops the instruction (the official default)

`paperlab` is our own format (`paperlab.core.llm.chat.render_chat`): `user: ...\\nassistant: `.
Our server adds the BOS token itself, so the template holds only `user: `.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paperlab.core.errors import UserError

LLAMA3_STOPS = ("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>")
CHATML_STOPS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
# Qwen2.5's chat template inserts this system prompt when none is given; the model was trained
# with it, and prompted without it (the bare `<|im_start|>user\n`) it writes fragments.
QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)


@dataclass(frozen=True)
class ChatFamily:
    """One chat format: the pre-query template and what stops generation.

    `stop_tokens` end any generation in this format (the official `stop_tokens`);
    `assistant_stops` (the official `stop_tokens_assistant`) are added when extracting an
    instruction, so a model that starts the assistant's turn is cut there. `post_query` closes
    the user turn and opens the assistant's; `turn_end` closes the assistant's turn and
    `mt_append_template` opens the next user turn (multi-turn extraction)."""

    name: str
    pre_query_template: str
    stop_tokens: tuple[str, ...]
    assistant_stops: tuple[str, ...] = ("assistant",)
    post_query: str = ""
    turn_end: str = ""
    mt_append_template: str = ""
    note: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def instruction_stops(self, *, newline: bool = True) -> list[str]:
        """Stop strings for the instruction: the family's, the assistant markers, and (the
        official default, `--early_stopping`) the first newline."""
        stops = [*self.stop_tokens, *self.assistant_stops]
        if newline:
            stops.append("\n")
        return list(dict.fromkeys(stops))

    def multi_turn_prompt(self, turns: list[tuple[str, str]]) -> str:
        """The raw prompt that asks for the next user turn after `turns` [(query, reply)]."""
        text = self.pre_query_template
        for i, (query, reply) in enumerate(turns):
            if i:
                text += self.mt_append_template
            text += query + self.post_query + reply + self.turn_end
        return text + self.mt_append_template


FAMILIES: dict[str, ChatFamily] = {
    f.name: f
    for f in (
        ChatFamily(
            "llama3",
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
            LLAMA3_STOPS,
            post_query="<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            turn_end="<|eot_id|>",
            mt_append_template="<|start_header_id|>user<|end_header_id|>\n\n",
            note="Llama-3 / 3.1 / 3.3 Instruct (Magpie-Air and Magpie-Pro)",
            aliases=("llama-3", "llama3.1", "llama-3.1", "llama3.3"),
        ),
        ChatFamily(
            "qwen2",
            "<|im_start|>user\n",
            CHATML_STOPS,
            ("Assistant", "assistant"),
            post_query="<|im_end|>\n<|im_start|>assistant\n",
            turn_end="<|im_end|>\n",
            mt_append_template="<|im_start|>user\n",
            note="Qwen2 / Qwen1.5 Instruct",
            aliases=("qwen1.5",),
        ),
        ChatFamily(
            "qwen2.5",
            f"<|im_start|>system\n{QWEN25_SYSTEM}<|im_end|>\n<|im_start|>user\n",
            CHATML_STOPS,
            ("Assistant", "assistant"),
            post_query="<|im_end|>\n<|im_start|>assistant\n",
            turn_end="<|im_end|>\n",
            mt_append_template="<|im_start|>user\n",
            note="Qwen2.5 Instruct, with its default system prompt (without it: fragments)",
            aliases=("qwen25", "qwen-2.5"),
        ),
        ChatFamily(
            "phi3",
            "<s> <|user|>\n",
            ("</s>", "<s>", "<unk>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>")
            + ("<|end|>",),
            post_query="<|end|>\n<|assistant|>\n",
            turn_end="<|end|>\n",
            mt_append_template="<|user|>\n",
            note="Phi-3 mini / small / medium Instruct",
            aliases=("phi-3",),
        ),
        ChatFamily(
            "gemma2",
            "<bos><start_of_turn>user\n\n",
            ("<eos>", "<bos>", "<end_of_turn>"),
            post_query="<end_of_turn>\n<start_of_turn>model\n",
            turn_end="<end_of_turn>\n",
            mt_append_template="<start_of_turn>user\n",
            note="Gemma-2 it (the official table has the double newline)",
            aliases=("gemma-2",),
        ),
        ChatFamily(
            "mistral",
            "<s> [INST] ",
            ("<s>", "</s>", "[INST]", "[/INST]"),
            post_query=" [/INST]",
            turn_end="</s>",
            mt_append_template="[INST] ",
            note="Mistral-7B-Instruct and Llama-2-chat (the same [INST] format)",
            aliases=("llama2", "llama-2", "mixtral"),
        ),
        ChatFamily(
            "vicuna",
            f"{VICUNA_SYSTEM}\n\nUSER: ",
            ("</s>", "<s>", "<unk>"),
            ("ASSISTANT",),
            post_query=" ASSISTANT:",
            turn_end="</s>",
            mt_append_template="USER: ",
            note="Vicuna v1.1 / v1.5",
        ),
        ChatFamily(
            "chatml",
            "<|im_start|>user\n",
            CHATML_STOPS,
            ("Assistant", "assistant"),
            post_query="<|im_end|>\n<|im_start|>assistant\n",
            turn_end="<|im_end|>\n",
            mt_append_template="<|im_start|>user\n",
            note="generic ChatML (Yi, OpenHermes, ...)",
        ),
        ChatFamily(
            "paperlab",
            "user: ",
            ("\nassistant:", "\nuser:", "\nsystem:"),
            ("assistant:",),
            post_query="\nassistant: ",
            turn_end="\n",
            mt_append_template="user: ",
            note="paperlab's own format (`paperlab serve`; the server adds BOS)",
            aliases=("paperlab-v1",),
        ),
    )
}

_ALIASES = {alias: f.name for f in FAMILIES.values() for alias in (f.name, *f.aliases)}


def get_family(name: str) -> ChatFamily:
    """The family named `name` (or an alias, case-insensitive); one clear error otherwise."""
    if not isinstance(name, str) or name.lower() not in _ALIASES:
        raise UserError(
            f"unknown chat family {name!r}; known: {', '.join(FAMILIES)} "
            "(a new one needs its pre-query template in paperlab.papers.magpie.templates)"
        )
    return FAMILIES[_ALIASES[name.lower()]]
