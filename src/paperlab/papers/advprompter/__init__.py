"""AdvPrompter: Fast Adaptive Adversarial Prompting for LLMs (Paulus, Zharmagambetov, Guo,
Amos, Tian 2024; arXiv 2404.16873).

The idea: train an LLM, the *prompter*, to write for any request a suffix that makes a target
LLM comply, so that attacking a new request costs one generation instead of an optimisation.
Training alternates AdvPrompterOpt - a token-by-token search that samples candidates from the
prompter and keeps those that the frozen base finds likely and that lower the target's loss on
an affirmative answer ("Sure, here is ...") - with fine-tuning the prompter (LoRA) on the
suffixes found, drawn from a prioritised replay buffer. The claim: high attack success with
human-readable suffixes, generated ~800x faster than optimisation attacks; and fine-tuning the
target on such suffixes paired with refusals makes it robust without losing task accuracy.

Here, harmless by construction: the target is a tiny model trained to refuse a made-up class
of requests unless a trigger word (never shown to the prompter) is in the suffix.

The claims are in ``claims.py``, the commands in ``cli.py`` (``paperlab advprompter
train|attack|harden``); README.md has a runnable example.
"""

from paperlab.papers.advprompter.models import (
    ModelSize,
    alphabet_mask,
    build_llama,
    check_compatible,
    continuation_loss,
    greedy_replies,
    make_prompter,
    sample_suffixes,
    suffix_perplexity,
    target_loss,
    train_base,
    train_target,
)
from paperlab.papers.advprompter.opt import (
    OptParams,
    advprompter_opt,
    apply_repetition_penalty,
    sample_keep_best,
)
from paperlab.papers.advprompter.training import (
    PrompterTraining,
    ReplayBuffer,
    asr_at_k,
    jailbroken,
    prompter_nll,
    task_accuracy,
    train_prompter,
)
from paperlab.papers.advprompter.world import (
    REFUSAL_KEYWORDS,
    TRIGGER_WORDS,
    Request,
    SuffixChain,
    WordTokenizer,
    augment_target,
    default_tokenizer,
    is_refusal,
    random_suffix,
    requests,
    split_refused,
    suffix_words,
)

__all__ = [
    "REFUSAL_KEYWORDS",
    "TRIGGER_WORDS",
    "ModelSize",
    "OptParams",
    "PrompterTraining",
    "ReplayBuffer",
    "Request",
    "SuffixChain",
    "WordTokenizer",
    "advprompter_opt",
    "alphabet_mask",
    "apply_repetition_penalty",
    "asr_at_k",
    "augment_target",
    "build_llama",
    "check_compatible",
    "continuation_loss",
    "default_tokenizer",
    "greedy_replies",
    "is_refusal",
    "jailbroken",
    "make_prompter",
    "prompter_nll",
    "random_suffix",
    "requests",
    "sample_keep_best",
    "sample_suffixes",
    "split_refused",
    "suffix_perplexity",
    "suffix_words",
    "target_loss",
    "task_accuracy",
    "train_base",
    "train_prompter",
    "train_target",
]
