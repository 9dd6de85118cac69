"""ListOps (Nangia & Bowman 2018; the Long Range Arena version), generated offline.

Expressions over single digits with the operators ``MAX``, ``MIN``, ``MED`` (median,
rounded down) and ``SM`` (sum modulo 10), nested up to ``max_depth`` levels with at most
``max_args`` arguments per operator, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` → 9.  The grammar
and sampling rule follow the LRA generator: at depth below ``max_depth`` a node is an
operator with probability ``operator_prob`` (else a digit); at ``max_depth`` it is a digit.
Expressions longer than ``max_length`` tokens (or shorter than ``min_length``) are
rejected and redrawn.  Deterministic from ``seed`` (NumPy RNG; offline, no download).

Tokens: digits ``0–9`` → ids 0–9, ``[MAX`` 10, ``[MIN`` 11, ``[MED`` 12, ``[SM`` 13,
``]`` 14, padding 15 (``VOCAB = 16``).  The label (0–9) is predicted at the end; see
tasks/digits.py for the pooled, every-step loss used to train it online.
"""

from __future__ import annotations

import numpy as np

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
TOKENS = tuple(str(d) for d in range(10)) + OPERATORS + ("]",)
PAD = len(TOKENS)
VOCAB = PAD + 1
_ID = {t: i for i, t in enumerate(TOKENS)}


def _sample_tree(rng, depth, max_depth, max_args, operator_prob):
    if depth < max_depth and rng.random_sample() < operator_prob:
        op = OPERATORS[rng.randint(len(OPERATORS))]
        n = rng.randint(2, max_args + 1)
        return (op, [_sample_tree(rng, depth + 1, max_depth, max_args, operator_prob) for _ in range(n)])
    return int(rng.randint(10))


def evaluate(tree) -> int:
    """The value (0–9) of an expression tree ``(op, [args])`` or a digit."""
    if isinstance(tree, int):
        return tree
    op, args = tree
    values = [evaluate(a) for a in args]
    if op == "[MAX":
        return max(values)
    if op == "[MIN":
        return min(values)
    if op == "[MED":
        return int(np.floor(np.median(values)))
    return sum(values) % 10


def to_tokens(tree) -> list[str]:
    if isinstance(tree, int):
        return [str(tree)]
    op, args = tree
    return [op] + [t for a in args for t in to_tokens(a)] + ["]"]


def parse(tokens: list[str]):
    """The tree of a token list (inverse of :func:`to_tokens`)."""

    def node(i):
        tok = tokens[i]
        if tok in OPERATORS:
            args, i = [], i + 1
            while tokens[i] != "]":
                arg, i = node(i)
                args.append(arg)
            return (tok, args), i + 1
        return int(tok), i + 1

    tree, end = node(0)
    if end != len(tokens):
        raise ValueError("trailing tokens after a complete expression")
    return tree


def depth_of(tree) -> int:
    return 0 if isinstance(tree, int) else 1 + max(depth_of(a) for a in tree[1])


def listops(
    n: int,
    *,
    seed: int = 0,
    max_length: int = 2000,
    min_length: int = 1,
    max_depth: int = 10,
    max_args: int = 10,
    operator_prob: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tokens, lengths, labels)``: ``tokens [n, max_length]`` int32 ids padded with
    ``PAD`` after each expression, ``lengths [n]``, ``labels [n]`` (0–9).

    ``operator_prob`` is the chance that a node above ``max_depth`` is an operator (LRA
    uses 0.25; raise it for longer, deeper expressions).
    """
    for name, v in [("n", n), ("max_length", max_length), ("max_depth", max_depth)]:
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if not isinstance(max_args, int) or max_args < 2:
        raise ValueError(f"max_args must be an integer >= 2 (operators take 2+ args), got {max_args!r}.")
    if not 0 < min_length <= max_length:
        raise ValueError(f"need 0 < min_length <= max_length, got {min_length}, {max_length}.")
    if not 0.0 <= operator_prob < 1.0:
        raise ValueError(f"operator_prob must lie in [0, 1), got {operator_prob}.")
    rng = np.random.RandomState(seed)
    tokens = np.full((n, max_length), PAD, np.int32)
    lengths = np.zeros(n, np.int32)
    labels = np.zeros(n, np.int32)
    i, tries = 0, 0
    while i < n:
        tries += 1
        if tries > 1000 * n + 10000:
            raise ValueError(
                f"could not draw {n} expressions with {min_length} <= length <= {max_length} "
                f"(max_depth={max_depth}, operator_prob={operator_prob}); widen the range."
            )
        tree = _sample_tree(rng, 0, max_depth, max_args, operator_prob)
        toks = to_tokens(tree)
        if not (min_length <= len(toks) <= max_length):
            continue
        tokens[i, : len(toks)] = [_ID[t] for t in toks]
        lengths[i], labels[i] = len(toks), evaluate(tree)
        i += 1
    return tokens, lengths, labels


def decode(ids) -> list[str]:
    """Token strings of one row of ids (padding dropped)."""
    return [TOKENS[int(i)] for i in ids if int(i) != PAD]
