"""The claims' figures (matplotlib's Agg canvas through ``ctx.figure`` / ``ctx.save_figure``)."""

from __future__ import annotations

from paperlab.claims import RunContext


def plot_training(ctx: RunContext, history: dict[str, list[float]]) -> None:
    """Per epoch: the target's loss on the affirmative target with the prompter's suffix
    (before and after AdvPrompterOpt), and the share of optimised suffixes that jailbreak."""
    if not history.get("loss_init"):
        return
    fig, (ax1, ax2) = ctx.figure(1, 2, figsize=(8, 3))
    epochs = range(1, len(history["loss_init"]) + 1)
    ax1.plot(epochs, history["loss_init"], "o-", label="prompter suffix")
    ax1.plot(epochs, history["loss_opt"], "s-", label="AdvPrompterOpt suffix")
    ax1.set(xlabel="epoch", ylabel="target loss (1/t weighted)", title="AdvPrompterTrain")
    ax1.legend()
    ax2.plot(epochs, history["opt_jailbroken"], "o-")
    ax2.set(
        xlabel="epoch", ylabel="share jailbroken", ylim=(-0.05, 1.05), title="optimised suffixes"
    )
    ctx.save_figure(fig, "training.png")
