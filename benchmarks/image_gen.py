"""Image-generation speed, side by side in one process: LlamaGen's KV cache, TiTok's 1D tokens.

Three sections, each a Markdown table with its ratio and whether the issue's target is met:

  (1) llamagen (arXiv 2406.06525, Sec. 3.4): images/s of ``llamagen.sample`` with a KV cache and
      cond/uncond rows in one batch (the serving path) vs the recompute path (a full causal
      forward over the whole prefix at every step, also batched CFG, so only the cache differs)
      and vs the cache with two separate cond/uncond forwards; same model, labels, seed, CFG
      scale; token grids 4x4, 8x8, 16x16. The paths must give identical tokens. Target >= 3x.
  (2) titok (arXiv 2406.07550, Sec. 4.3): images/s of MaskGIT (8 steps) and of a KV-cached AR
      generator over K TiTok tokens vs over the 64-token 2D grid (GridTokenizer, patch 2),
      same generator width / depth / heads, the tokenizer's decode to pixels included in the
      time. Target >= 5x.
  (3) tokenizer throughput (encode, decode, images/s) of our ``TiTokTokenizer`` vs
      ``titok_pytorch.TiTokTokenizer`` (titok-pytorch 0.0.5, the `bench` extra) at matched
      width, depth, heads, image size, patch, K and codebook size; skipped (with a line saying
      so) when titok-pytorch is not installed. No target: the ratio is reported.

Every model is randomly initialised (seeded): sampling and tokenizer cost do not depend on the
weights (fixed number of tokens and steps, no early stop, no top-k / top-p). LlamaGen's output
layer is zero-initialised, which would make every next-token distribution uniform; we redraw it
N(0, 4/dim) so the identical-tokens check compares real, peaked distributions.

Timing: ``paperlab.core.timing.time_interleaved`` (every method once per repetition, in an order
that rotates between repetitions), medians over repetitions, X/Y = median time of Y / median
time of X. Section (1) runs one process-level warm-up through all three paths on a 2x2 grid and
then times without the per-method warm-up, so the 16x16 recompute is not run an extra time;
sections (2) and (3) warm every method up once. One torch thread by default (these models are
bound by per-op overhead; the machine's two cores are shared).

    python benchmarks/image_gen.py              # default: 5 reps, ~1-3 min on 2 cores
    python benchmarks/image_gen.py --quick      # 2 reps, small sizes, seconds
    python benchmarks/image_gen.py --sections titok tokenizer --reps 9
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import torch
from torch import nn

from paperlab.core.timing import Timings, time_interleaved
from paperlab.papers.llamagen import LlamaGen, LlamaGenConfig, sample
from paperlab.papers.titok import ARGenerator, GridTokenizer, MaskGIT, TiTokTokenizer

SECTIONS = ("llamagen", "titok", "tokenizer")
TARGET_CACHE = 3.0  # (1) KV cache + batched CFG over recompute
TARGET_TOKENS = 5.0  # (2) K TiTok tokens over the 64-token grid


@dataclass(frozen=True)
class TokSetting:
    """One matched tokenizer configuration for section (3)."""

    image_size: int
    patch_size: int
    width: int
    depth: int  # encoder and decoder depth
    heads: int
    num_latent_tokens: int
    codebook_size: int

    def label(self) -> str:
        return (
            f"{self.image_size}px p{self.patch_size} w{self.width} d{self.depth} "
            f"h{self.heads} K{self.num_latent_tokens} C{self.codebook_size}"
        )


# the titok claims' tokenizer, and a larger one (titok's "full" width, depth and codebook)
SMALL_TOK = TokSetting(16, 4, 64, 2, 4, 8, 256)
LARGE_TOK = TokSetting(32, 4, 128, 4, 4, 32, 1024)


@dataclass
class BenchConfig:
    reps: int = 5
    threads: int = 1
    seed: int = 0
    sections: tuple[str, ...] = SECTIONS
    num_classes: int = 12  # shapes: 4 shapes x 3 colours
    # (1) llamagen: the generator of the llamagen claims' default preset
    lg_grids: tuple[int, ...] = (4, 8, 16)
    lg_batch: int = 8
    lg_cfg_scale: float = 2.0
    lg_dim: int = 64
    lg_layers: int = 3
    lg_heads: int = 2
    lg_codebook: int = 256
    # (2) titok generation: the titok claims' default tokenizers and generators
    gen_tokens: tuple[int, ...] = (8, 16)
    grid_patch: int = 2  # 16 px / 2 = 8 x 8 = 64 grid tokens
    gen_batch: int = 100
    image_size: int = 16
    tok_width: int = 64
    tok_depth: int = 2
    tok_heads: int = 4
    codebook_size: int = 256
    gen_dim: int = 64
    gen_depth: int = 2
    gen_heads: int = 4
    num_steps: int = 8  # MaskGIT decoding steps
    gen_cfg_scale: float = 2.0
    # (3) tokenizer throughput
    tok_settings: tuple[TokSetting, ...] = (SMALL_TOK, LARGE_TOK)
    tok_batch: int = 100


PRESETS = {
    "default": BenchConfig(),
    "quick": BenchConfig(
        reps=2, lg_grids=(4, 8), lg_batch=4, gen_batch=16, tok_settings=(SMALL_TOK,), tok_batch=16
    ),
}


def labels_for(n: int, cfg: BenchConfig) -> torch.Tensor:
    return torch.arange(n) % cfg.num_classes


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# (1) LlamaGen: KV cache + batched CFG vs recompute


def llamagen_model(cfg: BenchConfig, grid: int) -> LlamaGen:
    torch.manual_seed(cfg.seed)
    model = LlamaGen(
        config=LlamaGenConfig(
            codebook_size=cfg.lg_codebook,
            num_classes=cfg.num_classes,
            grid_size=grid,
            dim=cfg.lg_dim,
            n_layers=cfg.lg_layers,
            n_heads=cfg.lg_heads,
        )
    )
    # The zero-initialised output layer (Sec. 2.2) gives uniform logits: redraw it so the
    # identical-tokens check compares peaked distributions (logit std ~2).
    nn.init.normal_(model.model.lm_head.weight, std=2.0 / cfg.lg_dim**0.5)
    return model.eval()


def llamagen_methods(model: LlamaGen, cfg: BenchConfig) -> dict[str, Callable]:
    common = dict(cfg_scale=cfg.lg_cfg_scale, seed=cfg.seed)
    return {
        "cache": lambda y: sample(model, y, use_cache=True, batch_cfg=True, **common),
        "separate": lambda y: sample(model, y, use_cache=True, batch_cfg=False, **common),
        "recompute": lambda y: sample(model, y, use_cache=False, batch_cfg=True, **common),
    }


def bench_llamagen(cfg: BenchConfig) -> list[dict]:
    warm = llamagen_model(cfg, 2)  # process-level warm-up of all three paths
    for fn in llamagen_methods(warm, cfg).values():
        fn(labels_for(cfg.lg_batch, cfg))
    rows = []
    for grid in cfg.lg_grids:
        model = llamagen_model(cfg, grid)
        labels = labels_for(cfg.lg_batch, cfg)
        t = time_interleaved(llamagen_methods(model, cfg), [labels], cfg.reps, warmup=False)
        out = {name: t.outputs[name][0] for name in t.outputs}
        ratio = t.ratio("recompute", "cache")
        rows.append(
            dict(
                grid=grid,
                n=cfg.lg_batch,
                params=model.num_params(),
                ips={name: cfg.lg_batch / t.median(name) for name in t.seconds},
                ratio=ratio,
                batching=t.ratio("separate", "cache"),
                agree=float((out["cache"] == out["recompute"]).float().mean()),
                identical=torch.equal(out["cache"], out["recompute"])
                and torch.equal(out["cache"], out["separate"]),
            )
        )
        print(f"  llamagen {grid}x{grid} done", file=sys.stderr, flush=True)
    return rows


def llamagen_table(rows: list[dict]) -> str:
    head = (
        "| grid (tokens) | images | cache + batched CFG img/s | cache, separate CFG img/s "
        "| recompute img/s | cache / recompute | batched / separate CFG "
        "| identical tokens | meets 3x |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ips = r["ips"]
        same = "yes" if r["identical"] else f"no ({r['agree']:.1%} agree)"
        lines.append(
            f"| {r['grid']}x{r['grid']} ({r['grid'] ** 2}) | {r['n']} | {ips['cache']:.1f} "
            f"| {ips['separate']:.1f} | {ips['recompute']:.1f} | {r['ratio']:.2f}x "
            f"| {r['batching']:.2f}x | {same} | {yes_no(r['ratio'] >= TARGET_CACHE)} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# (2) TiTok: generation over K 1D tokens vs over the 64-token 2D grid, decode included


def titok_tokenizers(cfg: BenchConfig) -> dict[str, nn.Module]:
    common = dict(
        image_size=cfg.image_size,
        width=cfg.tok_width,
        enc_depth=cfg.tok_depth,
        dec_depth=cfg.tok_depth,
        n_heads=cfg.tok_heads,
        codebook_size=cfg.codebook_size,
    )
    torch.manual_seed(cfg.seed)
    toks: dict[str, nn.Module] = {
        f"K={k}": TiTokTokenizer(patch_size=4, num_latent_tokens=k, **common)
        for k in cfg.gen_tokens
    }
    toks["grid"] = GridTokenizer(patch_size=cfg.grid_patch, **common)
    return {name: tok.eval() for name, tok in toks.items()}


def titok_generator(cfg: BenchConfig, kind: str, seq_len: int) -> nn.Module:
    torch.manual_seed(cfg.seed)
    common = dict(
        codebook_size=cfg.codebook_size,
        seq_len=seq_len,
        num_classes=cfg.num_classes,
        dim=cfg.gen_dim,
        n_heads=cfg.gen_heads,
    )
    if kind == "maskgit":
        return MaskGIT(depth=cfg.gen_depth, **common).eval()
    return ARGenerator(n_layers=cfg.gen_depth, **common).eval()


def titok_sampler(cfg: BenchConfig, kind: str, gen: nn.Module, tok: nn.Module) -> Callable:
    kw: dict = {"cfg_scale": cfg.gen_cfg_scale}
    if kind == "maskgit":
        kw["num_steps"] = cfg.num_steps  # arccos schedule, annealed Gumbel: the defaults

    @torch.inference_mode()
    def run(labels: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(cfg.seed)
        return tok.decode_indices(gen.generate(labels, generator=g, **kw))  # pixels

    return run


def bench_titok(cfg: BenchConfig) -> list[dict]:
    toks = titok_tokenizers(cfg)
    methods, gens = {}, {}
    for kind in ("maskgit", "ar"):
        for src, tok in toks.items():
            gens[kind, src] = titok_generator(cfg, kind, tok.num_tokens)
            methods[f"{kind} {src}"] = titok_sampler(cfg, kind, gens[kind, src], tok)
    labels = labels_for(cfg.gen_batch, cfg)
    t = time_interleaved(methods, [labels], cfg.reps)
    for name, images in t.outputs.items():
        if images[0].shape != (cfg.gen_batch, 3, cfg.image_size, cfg.image_size):
            raise RuntimeError(f"{name}: images of shape {tuple(images[0].shape)}")
    print("  titok generation done", file=sys.stderr, flush=True)
    rows, n = [], cfg.gen_batch
    for kind in ("maskgit", "ar"):
        grid = toks["grid"].num_tokens
        for src in [s for s in toks if s != "grid"]:
            k = toks[src].num_tokens
            forwards = (cfg.num_steps, cfg.num_steps) if kind == "maskgit" else (k, grid)
            rows.append(
                dict(
                    kind=kind,
                    k=k,
                    grid=grid,
                    forwards=forwards,
                    n=n,
                    params=(params(gens[kind, src]), params(gens[kind, "grid"])),
                    ips=(per_s(t, f"{kind} {src}", n), per_s(t, f"{kind} grid", n)),
                    ratio=t.ratio(f"{kind} grid", f"{kind} {src}"),
                )
            )
    return rows


def per_s(t: Timings, name: str, n: int) -> float:
    return n / t.median(name)


def titok_table(rows: list[dict]) -> str:
    head = (
        "| generator | images | TiTok K | grid tokens | forwards K / grid "
        "| generator params K / grid | TiTok img/s | grid img/s | TiTok / grid | meets 5x |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        name = f"MaskGIT ({r['forwards'][0]} steps)" if r["kind"] == "maskgit" else "AR, KV cache"
        lines.append(
            f"| {name} | {r['n']} | {r['k']} | {r['grid']} "
            f"| {r['forwards'][0]} / {r['forwards'][1]} | {r['params'][0]:,} / {r['params'][1]:,} "
            f"| {r['ips'][0]:.1f} | {r['ips'][1]:.1f} | {r['ratio']:.2f}x "
            f"| {yes_no(r['ratio'] >= TARGET_TOKENS)} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# (3) tokenizer throughput: ours vs titok-pytorch


def tokenizer_pair(s: TokSetting, seed: int, peer_cls) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    ours = TiTokTokenizer(
        image_size=s.image_size,
        patch_size=s.patch_size,
        width=s.width,
        enc_depth=s.depth,
        dec_depth=s.depth,
        n_heads=s.heads,
        num_latent_tokens=s.num_latent_tokens,
        codebook_size=s.codebook_size,
    )
    head_dim = s.width // s.heads
    peer = peer_cls(
        dim=s.width,
        image_size=s.image_size,
        patch_size=s.patch_size,
        num_latent_tokens=s.num_latent_tokens,
        codebook_size=s.codebook_size,
        enc_depth=s.depth,
        dec_depth=s.depth,
        enc_heads=s.heads,
        dec_heads=s.heads,
        enc_dim_head=head_dim,
        dec_dim_head=head_dim,
    )
    return ours.eval(), peer.eval()


def sizes(ours: nn.Module, peer: nn.Module) -> dict[str, tuple[int, str]]:
    """Parameter count incl. the codebook, and the codebook's shape, of each tokenizer."""
    ours_cb = ours.quantizer.codebook  # (C, code_dim), a Parameter (counted by params())
    peer_cb = peer.vq.codebook  # (C, dim), an EMA buffer: added here
    return {
        "ours": (params(ours), "x".join(map(str, ours_cb.shape))),
        "peer": (params(peer) + peer_cb.numel(), "x".join(map(str, peer_cb.shape))),
    }


def snapshot(*models: nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for m in models for v in m.state_dict().values()]


def tokenizer_methods(ours: nn.Module, peer: nn.Module, ids: dict) -> dict[str, Callable]:
    """Encode: images -> ids (each library's own path); decode: fixed ids -> images (ours
    clamps to [0, 1], titok-pytorch returns the raw decoder output)."""
    return {
        "ours encode": ours.encode,
        "peer encode": lambda images: peer(images, return_codebook_ids=True),
        "ours decode": lambda _: ours.decode_indices(ids["ours"]),
        "peer decode": lambda _: peer.codebook_ids_to_images(ids["peer"]),
    }


def bench_tokenizers(cfg: BenchConfig) -> list[dict] | None:
    try:
        from titok_pytorch import TiTokTokenizer as PeerTiTok
    except Exception as e:  # not installed, or one of its dependencies fails to import
        print(
            f"tokenizer: titok-pytorch cannot be imported ({type(e).__name__}: {e}); "
            "skipping this section (pip install 'paperlab[bench]')"
        )
        return None
    rows = []
    for s in cfg.tok_settings:
        ours, peer = tokenizer_pair(s, cfg.seed, PeerTiTok)
        before = snapshot(ours, peer)
        g = torch.Generator().manual_seed(cfg.seed)
        x = torch.rand(cfg.tok_batch, 3, s.image_size, s.image_size, generator=g)
        with torch.inference_mode():
            ids = {"ours": ours.encode(x), "peer": peer(x, return_codebook_ids=True)}
            for name, i in ids.items():
                if tuple(i.shape) != (cfg.tok_batch, s.num_latent_tokens):
                    raise RuntimeError(f"{name}: token ids of shape {tuple(i.shape)}")
            t = time_interleaved(tokenizer_methods(ours, peer, ids), [x], cfg.reps)
        if not all(map(torch.equal, before, snapshot(ours, peer))):  # e.g. an EMA codebook update
            raise RuntimeError("a tokenizer changed its weights or buffers while being timed")
        n, sz = cfg.tok_batch, sizes(ours, peer)
        for lib in ("ours", "peer"):
            enc, dec = t.median(f"{lib} encode"), t.median(f"{lib} decode")
            rows.append(
                dict(
                    setting=s,
                    lib=lib,
                    n=n,
                    size=sz[lib],
                    enc=n / enc,
                    dec=n / dec,
                    both=n / (enc + dec),
                    seconds=enc + dec,
                )
            )
        rows[-2]["ratio"] = rows[-1]["seconds"] / rows[-2]["seconds"]
        print(f"  tokenizer {s.label()} done", file=sys.stderr, flush=True)
    return rows


def tokenizer_table(rows: list[dict]) -> str:
    head = (
        "| setting | library | images | parameters (incl. codebook) | codebook "
        "| encode img/s | decode img/s | encode + decode img/s | ours / peer |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lib = "ours" if r["lib"] == "ours" else "titok-pytorch"
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ""
        lines.append(
            f"| {r['setting'].label()} | {lib} | {r['n']} | {r['size'][0]:,} | {r['size'][1]} "
            f"| {r['enc']:.0f} | {r['dec']:.0f} | {r['both']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def yes_no(ok: bool) -> str:
    return "yes" if ok else "no"


def versions() -> str:
    parts = [f"torch {torch.__version__}"]
    for dist in ("titok-pytorch", "x-transformers", "vector-quantize-pytorch"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} not installed")
    return ", ".join(parts)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 reps, small sizes (seconds)")
    ap.add_argument("--reps", type=int, help="timed repetitions (medians); default 5")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads; default 1")
    ap.add_argument("--seed", type=int, help="model init, inputs and sampling; default 0")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, help="default: all three")
    args = ap.parse_args(argv)
    cfg = PRESETS["quick" if args.quick else "default"]
    overrides = {k: getattr(args, k) for k in ("reps", "threads", "seed", "sections")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "sections" in overrides:
        overrides["sections"] = tuple(overrides["sections"])
    if overrides.get("reps", 1) < 1 or overrides.get("threads", 1) < 1:
        ap.error("--reps and --threads must be >= 1")
    return dataclasses.replace(cfg, **overrides)


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    print(f"command: python {shlex.join(sys.argv)}")
    print(
        f"{versions()}; torch threads {torch.get_num_threads()}, CPUs visible "
        f"{os.cpu_count()}, load avg at start {os.getloadavg()[0]:.2f}"
    )
    print(f"config: {cfg}")
    start = time.perf_counter()
    tables = []
    if "llamagen" in cfg.sections:
        rows = bench_llamagen(cfg)
        note = (
            f"LlamaGen generator dim {cfg.lg_dim}, {cfg.lg_layers} layers, {cfg.lg_heads} "
            f"heads, codebook {cfg.lg_codebook}, {rows[0]['params']:,} params (2D RoPE: none "
            f"depend on the grid); CFG {cfg.lg_cfg_scale:g}, temperature 1, no top-k / "
            f"top-p; random init"
        )
        tables.append(
            ("(1) llamagen: KV cache + batched CFG vs recompute", note, llamagen_table(rows))
        )
    if "titok" in cfg.sections:
        note = (
            f"tokenizers width {cfg.tok_width}, depth {cfg.tok_depth}+{cfg.tok_depth}, "
            f"{cfg.tok_heads} heads, codebook {cfg.codebook_size}, {cfg.image_size} px "
            f"(TiTok patch 4, grid patch {cfg.grid_patch}); generators dim {cfg.gen_dim}, "
            f"depth {cfg.gen_depth}, {cfg.gen_heads} heads; CFG {cfg.gen_cfg_scale:g}; "
            "time = tokens + decode to pixels; random init"
        )
        tables.append(
            ("(2) titok: K 1D tokens vs the 2D grid", note, titok_table(bench_titok(cfg)))
        )
    if "tokenizer" in cfg.sections:
        rows = bench_tokenizers(cfg)
        if rows is not None:
            note = (
                "encode = image -> ids, decode = ids -> image; encode + decode = "
                "n / (median encode + median decode); random init"
            )
            tables.append(("(3) tokenizer: ours vs titok-pytorch", note, tokenizer_table(rows)))
    print(
        f"\nwall time {time.perf_counter() - start:.0f} s, "
        f"load avg at end {os.getloadavg()[0]:.2f}; medians over {cfg.reps} reps"
    )
    for title, note, table in tables:
        print(f"\n### {title}\n\n{note}\n\n{table}")


if __name__ == "__main__":
    main()
