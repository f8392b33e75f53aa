"""How likely a character language model finds a sentence, character by character.

A sentence's log-probability is the sum of the log-probabilities of its characters,
each given ``<bos>`` and the characters before it (the chain rule). The sum is taken of
logarithms, in float64: a product of per-character probabilities underflows long before
a paragraph ends. With ``include_eos`` the sentence is read as complete, so the
probability that the model stops right after it (its ``<eos>``) is a factor too.

The model is used through its public API: ``encode(text)``, ``token_log_probs(tokens)``
and ``vocab`` (``characters``, ``eos``) of ``CharGPT``. It runs in eval mode without
gradients and gets its training flag back afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from genlab.nn.modes import evaluating

EOS_LABEL = "<eos>"
BOS_LABEL = "<bos>"
SHOWN = {"\n": "\\n", "\t": "\\t", " ": "␣"}


def character_label(character: str) -> str:
    """``character`` as drawn on an axis or in a table: newline ``\\n``, tab ``\\t``
    and space ``␣``, so that none of them is invisible."""
    return SHOWN.get(character, character)


class TokenScore(NamedTuple):
    """One scored token: its character (``<eos>`` for the end) and its log-probability
    in nats given everything before it."""

    character: str
    log_prob: float


@dataclass(frozen=True)
class SentenceScore:
    """The log-probability of ``text`` (nats), token by token."""

    text: str
    tokens: list[TokenScore]
    log_prob: float

    @property
    def nats_per_character(self) -> float:
        """Mean negative log-probability per scored token (``<eos>`` counts as one)."""
        return -self.log_prob / len(self.tokens)

    @property
    def bits_per_character(self) -> float:
        return self.nats_per_character / math.log(2)


@torch.no_grad()
def sentence_log_prob(model: nn.Module, text: str, include_eos: bool = False) -> SentenceScore:
    """``log p(text)`` under a character language model, with every character's share.

    Without ``include_eos`` this is the probability that a text starts with ``text``;
    with it, that the text is exactly ``text`` (the ``<eos>`` after it is scored too).
    The tokens and ``<bos>`` must fit in the model's context."""
    tokens = model.encode(text)
    if include_eos:
        tokens = torch.cat([tokens, tokens.new_tensor([model.vocab.eos])])
    if len(tokens) == 0:
        raise ValueError("nothing to score: the text is empty (score its <eos> with include_eos)")
    with evaluating(model):
        log_probs = model.token_log_probs(tokens[None])[0].double().cpu()
    characters = list(text) + ([EOS_LABEL] if include_eos else [])
    scores = [TokenScore(c, float(lp)) for c, lp in zip(characters, log_probs, strict=True)]
    return SentenceScore(text, scores, float(log_probs.sum()))
