"""CLRS-style tasks generated here, in both forms TransNAR needs.

Four algorithms of CLRS-30 (Veličković et al. 2022), each as an :class:`Instance` (inputs and
outputs as plain tuples, so ``==`` compares them):

============== ======================== =========================== ==========================
algorithm      inputs (CLRS spec order)  output (CLRS spec)          text of the output
============== ======================== =========================== ==========================
insertion_sort key: node scalar          pred: node pointer          the keys in sorted order
minimum        key: node scalar          min: node mask_one          the index of the minimum
bfs            s: mask_one, A: edge      pi: node pointer            the BFS-tree parents
dijkstra       s: mask_one, A: edge      pi: node pointer            the shortest-path parents
============== ======================== =========================== ==========================

* graph form (:func:`graph_form`): node features (``pos``, ``key``, ``s``), edge features
  (``A``, ``adj`` with self-loops as CLRS's ``probing.graph``), the target per node;
* text form (:func:`format_example`): the CLRS-Text layout of ``clrs/_src/clrs_text/
  clrs_utils.py`` — question ``"{algo}:\\n{inputs}\\n{output names}:\\n"``, answer
  ``"{output}\\n\\n"``; inputs joined by ``", "`` in spec order, ``pos`` left out, ``adj`` left
  out when ``A`` is there; node scalars and edge scalars printed with ``.3g``; a permutation
  output is printed as the keys in that order; a mask_one as its index; pointers as ints.

Inputs are sampled as CLRS's samplers do (U[0, 1) keys; Erdős–Rényi graphs with p = 0.5, made
undirected by ``mat * mat.T``; Dijkstra's weights U[0, 1) per direction) and truncated to 3
decimals, as ``build_sampler(..., truncate_decimals=3)``, so text and graph hold the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

ALGORITHMS: tuple[str, ...] = ("insertion_sort", "minimum", "bfs", "dijkstra")
OUTPUT_NAME = {"insertion_sort": "pred", "minimum": "min", "bfs": "pi", "dijkstra": "pi"}
GRAPH_ALGOS = frozenset({"bfs", "dijkstra"})


@dataclass(frozen=True)
class Instance:
    """One CLRS sample. ``inputs``: ``key`` (tuple of floats) or ``s`` (int) and ``A`` (tuple of
    row tuples); ``outputs``: ``pred``/``pi`` (tuple of ints) or ``min`` (int)."""

    algo: str
    inputs: dict = field(hash=False)
    outputs: dict = field(hash=False)

    @property
    def n(self) -> int:
        return len(self.inputs["key"] if "key" in self.inputs else self.inputs["A"])


# ---------------------------------------------------------------------------------------------
# The algorithms (CLRS3 as in clrs/_src/algorithms), on plain Python data


def insertion_sort_pred(key: tuple[float, ...]) -> tuple[int, ...]:
    """Predecessor pointers of the (stable) sorted order; the first element points to itself."""
    order = sorted(range(len(key)), key=lambda i: key[i])  # stable, like insertion sort
    pred = [0] * len(key)
    pred[order[0]] = order[0]
    for a, b in zip(order, order[1:], strict=False):
        pred[b] = a
    return tuple(pred)


def minimum_index(key: tuple[float, ...]) -> int:
    """CLRS's ``minimum``: a strict ``<`` scan, so the first of equal minima wins."""
    best = 0
    for i in range(1, len(key)):
        if key[i] < key[best]:
            best = i
    return best


def bfs_parents(A: tuple[tuple[float, ...], ...], s: int) -> tuple[int, ...]:
    """CLRS's level-synchronous BFS: each round, every node reached so far relaxes its edges in
    index order, so a node's parent is its lowest-index neighbour one level up. Unreached nodes
    (and ``s``) point to themselves."""
    n = len(A)
    pi, reach = list(range(n)), [0] * n
    reach[s] = 1
    while True:
        prev = list(reach)
        for i in range(n):
            for j in range(n):
                if A[i][j] > 0 and prev[i] == 1:
                    if pi[j] == j and j != s:
                        pi[j] = i
                    reach[j] = 1
        if reach == prev:
            return tuple(pi)


def dijkstra_parents(A: tuple[tuple[float, ...], ...], s: int) -> tuple[int, ...]:
    """CLRS's Dijkstra with an array queue: pop the lowest distance (lowest index on ties),
    relax ``u -> v`` when ``A[u][v] != 0``; unreached nodes point to themselves."""
    n = len(A)
    d, mark, in_queue, pi = [0.0] * n, [0] * n, [0] * n, list(range(n))
    in_queue[s] = 1
    for _ in range(n):
        queued = [i for i in range(n) if in_queue[i]]
        if not queued:
            break
        u = min(queued, key=lambda i: (d[i], i))
        mark[u], in_queue[u] = 1, 0
        for v in range(n):
            if A[u][v] != 0 and not mark[v] and (not in_queue[v] or d[u] + A[u][v] < d[v]):
                pi[v], d[v], in_queue[v] = u, d[u] + A[u][v], 1
    return tuple(pi)


# ---------------------------------------------------------------------------------------------
# Samplers


def _trunc3(x: np.ndarray) -> np.ndarray:
    return np.trunc(x * 1000) / 1000  # CLRS `_trunc_array(truncate_decimals=3)`


def _er_graph(rng: np.random.Generator, n: int, *, weighted: bool, p: float = 0.5) -> np.ndarray:
    """CLRS ``_random_er_graph(directed=False)``: Bernoulli(p) matrix times its transpose (the
    diagonal is kept); weights U[0, 1) drawn per direction."""
    mat = rng.binomial(1, p, size=(n, n))
    mat = mat * mat.T
    if weighted:
        return _trunc3(mat * rng.uniform(0.0, 1.0, size=(n, n)))
    return mat.astype(float)


# DEVIATION: 4 of CLRS-Text's 30 algorithms, our own samplers (no dm-clrs: it needs jax and
# tensorflow), printed without hints/traces.
def sample(algo: str, n: int, rng: np.random.Generator) -> Instance:
    """One instance of ``algo`` with ``n`` nodes."""
    if algo in ("insertion_sort", "minimum"):
        key = tuple(float(v) for v in _trunc3(rng.uniform(0.0, 1.0, size=n)))
        out = insertion_sort_pred(key) if algo == "insertion_sort" else minimum_index(key)
        return Instance(algo, {"key": key}, {OUTPUT_NAME[algo]: out})
    if algo in GRAPH_ALGOS:
        mat = _er_graph(rng, n, weighted=algo == "dijkstra")
        s = int(rng.integers(n))
        A = tuple(tuple(float(v) for v in row) for row in mat)
        pi = bfs_parents(A, s) if algo == "bfs" else dijkstra_parents(A, s)
        return Instance(algo, {"s": s, "A": A}, {"pi": pi})
    raise ValueError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")


def sample_many(
    algos: tuple[str, ...], sizes: tuple[int, ...], count: int, seed: int
) -> list[Instance]:
    """``count`` instances, algorithms round-robin, sizes uniform over ``sizes``."""
    rng = np.random.default_rng(seed)
    return [sample(algos[i % len(algos)], int(rng.choice(sizes)), rng) for i in range(count)]


# ---------------------------------------------------------------------------------------------
# Graph form (the NAR's input)


@dataclass
class Graph:
    """``node`` (n, 3): pos, key, s; ``edge`` (n, n, 2): A, adj; ``adj`` (n, n) with self-loops;
    ``target``: (n,) pointers, or the index of the one node (``min``)."""

    algo: str
    node: np.ndarray
    edge: np.ndarray
    adj: np.ndarray
    target: np.ndarray | int


def graph_form(x: Instance) -> Graph:
    n = x.n
    node = np.zeros((n, 3), dtype=np.float32)
    node[:, 0] = np.arange(n) / n  # CLRS `pos`
    if x.algo in GRAPH_ALGOS:
        A = np.asarray(x.inputs["A"], dtype=np.float32)
        node[x.inputs["s"], 2] = 1.0
        adj = ((A + np.eye(n)) != 0).astype(np.float32)  # CLRS probing.graph
    else:
        node[:, 1] = x.inputs["key"]
        A = np.zeros((n, n), dtype=np.float32)
        adj = np.ones((n, n), dtype=np.float32)  # sequences: a complete graph, as in CLRS
    edge = np.stack([A, adj], axis=-1).astype(np.float32)
    out = x.outputs[OUTPUT_NAME[x.algo]]
    target = np.asarray(out, dtype=np.int64) if isinstance(out, tuple) else int(out)
    return Graph(x.algo, node, edge, adj, target)


# ---------------------------------------------------------------------------------------------
# Text form: CLRS-Text (clrs/_src/clrs_text/clrs_utils.py)


def _g3(v: float) -> str:
    return f"{v:.3g}"


def _bracket(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def format_inputs(x: Instance) -> str:
    if x.algo in GRAPH_ALGOS:
        rows = ", ".join(_bracket([_g3(v) for v in row]) for row in x.inputs["A"])
        return f"s: {x.inputs['s']}, A: [{rows}]"
    return "key: " + _bracket([_g3(v) for v in x.inputs["key"]])


def format_output(x: Instance) -> str:
    out = x.outputs[OUTPUT_NAME[x.algo]]
    if x.algo == "insertion_sort":  # a permutation is printed as the keys in sorted order
        return _bracket([_g3(x.inputs["key"][i]) for i in pred_to_order(out)])
    if x.algo == "minimum":
        return str(out)
    return _bracket([str(p) for p in out])


def format_example(x: Instance) -> tuple[str, str]:
    """(question, answer) exactly as CLRS-Text's ``format_clrs_example`` without hints."""
    question = f"{x.algo}:\n{format_inputs(x)}\n{OUTPUT_NAME[x.algo]}:\n"
    return question, f"{format_output(x)}\n\n"


def pred_to_order(pred: tuple[int, ...]) -> list[int]:
    """Predecessor pointers -> node indices in order (CLRS-Text ``predecessors_to_order``)."""
    n = len(pred)
    has_successor = {p for i, p in enumerate(pred) if p != i}
    (last,) = [i for i in range(n) if i not in has_successor]
    order = [last]
    while pred[order[-1]] != order[-1]:
        order.append(pred[order[-1]])
    return order[::-1]


class ParseError(ValueError):
    pass


_NUM = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"


def parse_list(text: str, cast=float) -> list:
    """``"[a b c]"`` -> ``[a, b, c]``; ParseError if it is not one bracketed list of numbers."""
    m = re.fullmatch(rf"\[((?:{_NUM})(?: {_NUM})*)?\]", text.strip())
    if m is None:
        raise ParseError(f"not a list of numbers: {text[:40]!r}")
    return [cast(v) for v in (m.group(1) or "").split()]


def parse_question(question: str) -> tuple[str, dict]:
    """The inverse of the question layout: ``(algo, inputs)``."""
    lines = question.split("\n")
    if len(lines) != 4 or lines[3] != "" or not lines[0].endswith(":"):
        raise ParseError("a question is 'algo:', the inputs and 'output:' on three lines")
    algo = lines[0][:-1]
    if algo not in ALGORITHMS or lines[2] != f"{OUTPUT_NAME[algo]}:":
        raise ParseError(f"unknown algorithm or output line: {lines[0]!r}, {lines[2]!r}")
    if algo in GRAPH_ALGOS:
        m = re.fullmatch(r"s: (\d+), A: \[(.*)\]", lines[1])
        if m is None:
            raise ParseError(f"expected 's: N, A: [[...], ...]', got {lines[1][:40]!r}")
        rows = re.findall(r"\[[^\[\]]*\]", m.group(2))
        A = tuple(tuple(parse_list(r)) for r in rows)
        return algo, {"s": int(m.group(1)), "A": A}
    if not lines[1].startswith("key: "):
        raise ParseError(f"expected 'key: [...]', got {lines[1][:40]!r}")
    return algo, {"key": tuple(parse_list(lines[1][5:]))}


def parse_answer(algo: str, answer: str, inputs: dict) -> dict:
    """The inverse of the answer layout (``inputs`` resolve sorted keys back to pointers)."""
    text = answer[:-2] if answer.endswith("\n\n") else answer
    if algo == "minimum":
        if not re.fullmatch(r"\d+", text):
            raise ParseError(f"expected an index, got {text[:20]!r}")
        return {"min": int(text)}
    if algo == "insertion_sort":
        values, key = parse_list(text), list(inputs["key"])
        order, used = [], set()
        for v in values:  # equal keys: in index order, as a stable sort leaves them
            i = next((i for i, k in enumerate(key) if k == v and i not in used), None)
            if i is None:
                raise ParseError(f"{v} is not one of the keys")
            order.append(i)
            used.add(i)
        pred = [0] * len(order)
        pred[order[0]] = order[0]
        for a, b in zip(order, order[1:], strict=False):
            pred[b] = a
        return {"pred": tuple(pred)}
    return {"pi": tuple(parse_list(text, int))}


def parse_example(question: str, answer: str) -> Instance:
    algo, inputs = parse_question(question)
    return Instance(algo, inputs, parse_answer(algo, answer, inputs))


# ---------------------------------------------------------------------------------------------
# Scores on a generated answer (TransNAR Sec. 5: shape score, parse score, CLRS score)


def answer_elements(algo: str, text: str) -> list[float] | None:
    """The elements of an answer string (trailing blank line optional), None if it does not
    parse: one index for ``minimum``, else one bracketed list of numbers."""
    text = text[:-2] if text.endswith("\n\n") else text
    try:
        if algo == "minimum":
            if not re.fullmatch(r"\d+", text):
                raise ParseError(text)
            return [float(text)]
        return parse_list(text)
    except (ParseError, ValueError):
        return None


def score_answer(algo: str, predicted: str, target: str) -> dict[str, float]:
    """``exact``: the strings match; ``parse``: the prediction parses; ``shape``: it parses
    with as many elements as the target; ``clrs``: the fraction of elements equal to the
    target's, 0 when the shape is wrong (the CLRS score, element-wise accuracy)."""
    want = answer_elements(algo, target)
    if want is None:
        raise ValueError(f"the target answer does not parse: {target!r}")
    got = answer_elements(algo, predicted)
    parse = got is not None
    shape = parse and len(got) == len(want)
    clrs = sum(a == b for a, b in zip(got, want, strict=True)) / len(want) if shape else 0.0
    exact = predicted.rstrip("\n") == target.rstrip("\n")
    return {"exact": float(exact), "parse": float(parse), "shape": float(shape), "clrs": clrs}
