"""Token tasks, drawn with NumPy from the run's seed (layouts, vocabularies and the Markov
language's table: ``worker/core/spec/tokens.py``).

Each generator returns one-hot inputs (examples, steps, vocab) and per-step target token ids
(examples, steps), train examples first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from worker.core.spec import (
    AssociativeRecallData,
    MarkovLanguageData,
    ModularAdditionData,
    TokenCopyData,
    TokenData,
    TokenSortData,
)
from worker.core.spec.tokens import (
    BLANK,
    FIRST_SYMBOL,
    SEP,
    markov_table,
    prompt_answer,
    vocab_size,
)

Ints = NDArray[np.int64]
Pair = tuple[NDArray[np.float32], NDArray[np.float32]]


def one_hot(tokens: Ints, vocab: int) -> NDArray[np.float32]:
    out: NDArray[np.float32] = np.eye(vocab, dtype=np.float32)[tokens]
    return out


def lay_out(prompt: Ints, answer: Ints, causal: bool) -> tuple[Ints, Ints]:
    """Input and target tokens of the causal (``prompt SEP answer``, shifted by one) or the
    bidirectional (``prompt SEP blanks`` -> answer at the blanks) layout."""
    n, p = prompt.shape
    a = answer.shape[1]
    sep = np.full((n, 1), SEP, dtype=np.int64)
    blank = np.full((n, p), BLANK, dtype=np.int64)
    if causal:
        string = np.concatenate([prompt, sep, answer], axis=1)
        return string[:, :-1], np.concatenate([blank, answer], axis=1)
    masked = np.full((n, a), BLANK, dtype=np.int64)
    inputs = np.concatenate([prompt, sep, masked], axis=1)
    return inputs, np.concatenate([blank, np.full((n, 1), BLANK), answer], axis=1)


def _symbols(rng: np.random.Generator, n: int, length: int, alphabet: int) -> Ints:
    out: Ints = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + alphabet, size=(n, length))
    return out


def _copy(spec: TokenCopyData, rng: np.random.Generator) -> tuple[Ints, Ints]:
    prompt = _symbols(rng, spec.n_train + spec.n_val, spec.length, spec.alphabet)
    return prompt, prompt[:, ::-1].copy() if spec.reverse else prompt.copy()


def _sort(spec: TokenSortData, rng: np.random.Generator) -> tuple[Ints, Ints]:
    prompt = _symbols(rng, spec.n_train + spec.n_val, spec.length, spec.alphabet)
    return prompt, np.sort(prompt, axis=1)


def _recall(spec: AssociativeRecallData, rng: np.random.Generator) -> tuple[Ints, Ints]:
    """Keys are tokens 2..2+keys-1 (distinct within an example), values follow them."""
    n = spec.n_train + spec.n_val
    keys = np.argsort(rng.random((n, spec.keys)), axis=1)[:, : spec.pairs] + FIRST_SYMBOL
    values = rng.integers(0, spec.values, size=(n, spec.pairs)) + FIRST_SYMBOL + spec.keys
    pick = rng.integers(0, spec.pairs, size=n)
    rows = np.arange(n)
    prompt = np.empty((n, 2 * spec.pairs + 1), dtype=np.int64)
    prompt[:, 0:-1:2], prompt[:, 1:-1:2], prompt[:, -1] = keys, values, keys[rows, pick]
    return prompt, values[rows, pick][:, None]


def _modular(spec: ModularAdditionData, rng: np.random.Generator) -> tuple[Ints, Ints]:
    """Every pair (a, b) once, in a seeded order (the train/validation split of pairs)."""
    p = spec.modulus
    order = rng.permutation(p * p)
    a, b = order // p, order % p
    prompt = np.stack([a, b], axis=1).astype(np.int64) + FIRST_SYMBOL
    return prompt, ((a + b) % p + FIRST_SYMBOL)[:, None].astype(np.int64)


def markov_tokens(spec: MarkovLanguageData, n: int, rng: np.random.Generator) -> Ints:
    """``n`` strings of length + 1 tokens: ``order`` uniform tokens, then the chain."""
    v, k = spec.vocab, spec.order
    cumulative = np.cumsum(np.asarray(markov_table(v, k, spec.concentration, spec.table_seed)),
                           axis=1)
    tokens = np.empty((n, spec.length + 1), dtype=np.int64)
    tokens[:, :k] = rng.integers(0, v, size=(n, k))
    context = np.zeros(n, dtype=np.int64)
    for j in range(k):
        context = context * v + tokens[:, j]
    for t in range(k, spec.length + 1):
        u = rng.random(n)[:, None]
        nxt = np.minimum((cumulative[context] < u).sum(axis=1), v - 1)
        tokens[:, t] = nxt
        context = (context * v + nxt) % (v**k)
    return tokens


def generate_tokens(spec: TokenData, rng: np.random.Generator) -> Pair:
    """One-hot inputs and per-step target ids (as float32; the dataset casts them to long)."""
    vocab = vocab_size(spec)
    if isinstance(spec, MarkovLanguageData):
        tokens = markov_tokens(spec, spec.n_train + spec.n_val, rng)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
    else:
        if isinstance(spec, TokenCopyData):
            prompt, answer = _copy(spec, rng)
        elif isinstance(spec, TokenSortData):
            prompt, answer = _sort(spec, rng)
        elif isinstance(spec, AssociativeRecallData):
            prompt, answer = _recall(spec, rng)
        else:
            prompt, answer = _modular(spec, rng)
        assert (prompt.shape[1], answer.shape[1]) == prompt_answer(spec)
        inputs, targets = lay_out(prompt, answer, spec.causal)
    return one_hot(inputs, vocab), targets.astype(np.float32)
