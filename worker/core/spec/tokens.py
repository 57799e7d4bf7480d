"""Token tasks: seeded, in-process sequence tasks for attention models (torch-free part).

Every task is a string of tokens fed as one-hot steps (steps, vocab); targets are token ids at
every step (per-token cross-entropy). Tokens 0 (blank: no answer here, and the mask of a hidden
answer) and 1 (separator) are reserved by the prompt/answer tasks; their symbols start at 2.

Two layouts (``causal``):

- causal: the string is ``prompt SEP answer``; the input is all of it but the last token, and the
  target at each step is the next token from the separator on (blank before it). A model must not
  look ahead (the input at step t + 1 is the target at step t), so non-causal attention is
  refused on these tasks.
- bidirectional: the input is ``prompt SEP blank * len(answer)``; the targets are blank but
  at the masked steps, which hold the answer.

The answers are functions of the prompt, so the best achievable loss is 0; the k-gram Markov
language is random, and its best loss is its entropy, computed here exactly
(:func:`markov_min_cross_entropy`): a model can do no better in expectation than the chain's own
conditional probabilities.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, model_validator

from worker.core.spec.base import StrictModel

MAX_TOKEN_EXAMPLES = 1_000_000
BLANK, SEP, FIRST_SYMBOL = 0, 1, 2
#: Most transition probabilities a Markov language may have (vocab^(order+1)), and the most
#: of them times its length: the exact entropy is computed in pure Python at validation.
MAX_MARKOV_ENTRIES = 8192
MAX_MARKOV_WORK = 1_000_000
_CAUSAL = Field(
    True,
    description="true: predict the answer token by token after the prompt (next-token "
    "targets; attention must be causal); false: predict masked answer steps all at once.",
)


class TokenCopyData(StrictModel):
    """Copy (or ``reverse``) a random string of ``length`` symbols from ``alphabet``."""

    kind: Literal["token_copy"] = "token_copy"
    length: int = Field(8, ge=1, le=2048)
    alphabet: int = Field(8, ge=2, le=1024)
    reverse: bool = False
    causal: bool = _CAUSAL
    n_train: int = Field(2048, ge=8, le=MAX_TOKEN_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_TOKEN_EXAMPLES)


class TokenSortData(StrictModel):
    """Sort a random string of ``length`` symbols from ``alphabet`` (repeats allowed)."""

    kind: Literal["token_sort"] = "token_sort"
    length: int = Field(8, ge=1, le=2048)
    alphabet: int = Field(8, ge=2, le=1024)
    causal: bool = _CAUSAL
    n_train: int = Field(2048, ge=8, le=MAX_TOKEN_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_TOKEN_EXAMPLES)


class AssociativeRecallData(StrictModel):
    """``pairs`` key-value pairs (distinct keys from ``keys`` symbols, values from ``values``),
    then a query key: the answer is its value."""

    kind: Literal["associative_recall"] = "associative_recall"
    pairs: int = Field(4, ge=1, le=512)
    keys: int = Field(8, ge=1, le=1024)
    values: int = Field(8, ge=2, le=1024)
    causal: bool = _CAUSAL
    n_train: int = Field(2048, ge=8, le=MAX_TOKEN_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_TOKEN_EXAMPLES)

    @model_validator(mode="after")
    def _enough_keys(self) -> AssociativeRecallData:
        if self.keys < self.pairs:
            raise ValueError(f"keys ({self.keys}) must be at least pairs ({self.pairs}): "
                             "keys are distinct within an example")
        return self


class ModularAdditionData(StrictModel):
    """a, b -> (a + b) mod ``modulus`` (Power et al. 2022): all modulus^2 pairs, shuffled with
    the seed; the first ``train_fraction`` train, the rest validate."""

    kind: Literal["modular_addition"] = "modular_addition"
    modulus: int = Field(23, ge=2, le=300)
    train_fraction: float = Field(0.5, gt=0, lt=1)
    causal: bool = _CAUSAL

    @model_validator(mode="after")
    def _both_splits(self) -> ModularAdditionData:
        n_train, n_val = modular_split(self)
        if min(n_train, n_val) < 8:
            raise ValueError(f"train_fraction {self.train_fraction:g} of {self.modulus}^2 "
                             f"pairs leaves {n_train} train and {n_val} validation pairs; "
                             "each split needs at least 8")
        return self


class MarkovLanguageData(StrictModel):
    """A random k-gram Markov "language": the first ``order`` tokens uniform, then each token
    drawn from a distribution over ``vocab`` tokens given the ``order`` before it (Dirichlet
    rows with ``concentration``; lower is more predictable, fixed by ``table_seed``). Next-token
    prediction over ``length`` steps; the exact best loss (the entropy) is in the data shape."""

    kind: Literal["markov_language"] = "markov_language"
    vocab: int = Field(8, ge=2, le=1024)
    order: int = Field(2, ge=1, le=8)
    length: int = Field(32, ge=2, le=4096)
    concentration: float = Field(0.3, ge=0.01, le=100)
    table_seed: int = Field(0, ge=0, le=2**31 - 1)
    n_train: int = Field(2048, ge=8, le=MAX_TOKEN_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_TOKEN_EXAMPLES)

    @model_validator(mode="after")
    def _small_table(self) -> MarkovLanguageData:
        entries = self.vocab ** (self.order + 1)
        if entries > MAX_MARKOV_ENTRIES:
            raise ValueError(f"vocab^(order+1) = {entries:,} transition probabilities; at most "
                             f"{MAX_MARKOV_ENTRIES:,}")
        if entries * self.length > MAX_MARKOV_WORK:
            raise ValueError(f"vocab^(order+1) x length = {entries * self.length:,}; at most "
                             f"{MAX_MARKOV_WORK:,} (the exact entropy is computed on submission)")
        if self.length <= self.order:
            raise ValueError(f"length ({self.length}) must exceed order ({self.order})")
        return self


PromptTask = TokenCopyData | TokenSortData | AssociativeRecallData | ModularAdditionData
TokenData = PromptTask | MarkovLanguageData
TOKEN_DATA = (TokenCopyData, TokenSortData, AssociativeRecallData, ModularAdditionData,
              MarkovLanguageData)
TOKEN_KINDS: tuple[str, ...] = ("token_copy", "token_sort", "associative_recall",
                                "modular_addition", "markov_language")


def modular_split(data: ModularAdditionData) -> tuple[int, int]:
    pairs = data.modulus**2
    n_train = round(pairs * data.train_fraction)
    return n_train, pairs - n_train


def vocab_size(data: TokenData) -> int:
    """Tokens in the task's vocabulary (one-hot width and number of classes)."""
    if isinstance(data, MarkovLanguageData):
        return data.vocab
    if isinstance(data, AssociativeRecallData):
        return FIRST_SYMBOL + data.keys + data.values
    if isinstance(data, ModularAdditionData):
        return FIRST_SYMBOL + data.modulus
    return FIRST_SYMBOL + data.alphabet


def prompt_answer(data: PromptTask) -> tuple[int, int]:
    """Lengths of the prompt and of the answer."""
    if isinstance(data, AssociativeRecallData):
        return 2 * data.pairs + 1, 1
    if isinstance(data, ModularAdditionData):
        return 2, 1
    return data.length, data.length


def steps_of(data: TokenData) -> int:
    """Input steps: causal ``prompt + answer`` (the last token is only a target), else
    ``prompt + SEP + answer``."""
    if isinstance(data, MarkovLanguageData):
        return data.length
    prompt, answer = prompt_answer(data)
    return prompt + answer if data.causal else prompt + 1 + answer


def token_shape_fields(data: TokenData) -> dict[str, Any]:
    """The fields of the data shape a token task implies (``data.DataShape``)."""
    steps, vocab = steps_of(data), vocab_size(data)
    if isinstance(data, ModularAdditionData):
        n_train, n_val = modular_split(data)
    else:
        n_train, n_val = data.n_train, data.n_val
    if isinstance(data, MarkovLanguageData):
        best = markov_min_cross_entropy(data.vocab, data.order, data.length,
                                        data.concentration, data.table_seed)
        causal = True
    else:
        best, causal = 0.0, data.causal
    return {"input_shape": (steps, vocab), "output_dim": vocab, "task": "classification",
            "n_train": n_train, "n_val": n_val, "per_step": True, "sequence_length": steps,
            "causal": causal, "min_cross_entropy": best}


@lru_cache(maxsize=32)
def markov_table(vocab: int, order: int, concentration: float, seed: int) -> list[list[float]]:
    """P(next | context) for each of vocab^order contexts (base-vocab index, oldest token most
    significant): rows drawn from Dirichlet(concentration) with ``random.Random(seed)``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(vocab**order):
        draws = [max(rng.gammavariate(concentration, 1.0), 1e-300) for _ in range(vocab)]
        total = sum(draws)
        rows.append([d / total for d in draws])
    return rows


def _entropy(row: list[float]) -> float:
    return -sum(p * math.log(p) for p in row if p > 0)


@lru_cache(maxsize=32)
def markov_min_cross_entropy(
    vocab: int, order: int, length: int, concentration: float, seed: int
) -> float:
    """The expected per-step cross-entropy (nats) of the true conditional probabilities: the
    best any model can do on average.

    Steps 0..order-2 predict tokens that are still uniform (log vocab each); from step
    order-1 on, the expected entropy of the row of the current context, whose distribution
    starts uniform and is pushed through the chain step by step (until it stops changing).
    """
    table = markov_table(vocab, order, concentration, seed)
    row_entropy = [_entropy(row) for row in table]
    contexts = vocab**order
    dist = [1.0 / contexts] * contexts
    total = (order - 1) * math.log(vocab)
    step_entropy = 0.0
    settled = False
    for _ in range(order - 1, length):
        if not settled:
            step_entropy = sum(p * h for p, h in zip(dist, row_entropy, strict=True))
            nxt = [0.0] * contexts
            for c, p in enumerate(dist):
                if p == 0.0:
                    continue
                base = (c * vocab) % contexts
                for token, q in enumerate(table[c]):
                    nxt[base + token] += p * q
            settled = sum(abs(a - b) for a, b in zip(nxt, dist, strict=True)) < 1e-13
            dist = nxt
        total += step_entropy
    return total / length
