"""Embedding inversion: a soft prompt that makes a GPT say a given sentence.

A soft prompt is ``num_embeddings`` free vectors in the model's input space, read after
``<bos>`` where token embeddings would be (each plus its position's embedding). They are
fitted by gradient descent, the model frozen, to minimise the cross-entropy of the
target's tokens read with teacher forcing: the inputs are ``<bos>``, the soft prompt and
the target's tokens but the last, and the prediction after the soft prompt and after each
target token is scored against the next target token. Whether the prompt works is then
checked the honest way: greedy decoding from ``<bos>`` and the soft prompt alone, through
the key-value cache.

The vectors need not lie near any token's embedding; their nearest tokens (by cosine
similarity to the rows of the token embedding table, ``<bos>`` left out) show how far
from readable text the solution is.

The model is used through its public API: ``gpt`` (``embed``, ``token_embedding``,
``position_embedding``, ``forward_embeddings``, ``new_cache``, ``bos``), ``encode``,
``decode`` and ``vocab`` of ``CharGPT``. Its parameters are not changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.analysis.text import EOS_LABEL, character_label
from genlab.nn.modes import evaluating


@dataclass(frozen=True)
class InversionStep:
    """The soft prompt after ``iteration`` optimiser steps: the teacher-forced loss
    (mean nats per target token), the greedy continuation (decoded, up to ``<eos>``),
    whether its tokens equal the target's, and each vector's nearest token."""

    iteration: int
    loss: float
    continuation: str
    exact: bool
    nearest_tokens: list[str]


@dataclass(frozen=True)
class InversionResult:
    """The target, the recorded steps (the first before any step, the last after the
    final one) and the final soft prompt ``[num_embeddings, width]`` (CPU)."""

    target: str
    history: list[InversionStep]
    embeddings: Tensor

    @property
    def final(self) -> InversionStep:
        return self.history[-1]


def invert_embeddings(
    model: nn.Module,
    target: str,
    num_embeddings: int = 4,
    iterations: int = 200,
    learning_rate: float = 0.1,
    include_eos: bool = False,
    init: Tensor | None = None,
    seed: int = 0,
    log_every: int = 1,
) -> InversionResult:
    """Fit ``num_embeddings`` soft-prompt vectors with ``iterations`` Adam steps so that
    the model continues ``<bos>`` + the soft prompt with ``target`` (and then stops, with
    ``include_eos``). ``init [num_embeddings, width]`` is the starting point; by default
    the embeddings of tokens drawn at random with ``seed``. Every ``log_every`` steps,
    and after the last, the state is recorded in the history.

    ``<bos>``, the soft prompt and every target token but the last (which is only
    predicted) must fit in the context: ``num_embeddings + len(target) (+ 1 for
    <eos>) <= context_length``."""
    gpt = model.gpt
    targets = target_tokens(model, target, include_eos)
    check_fits(num_embeddings, len(targets), gpt.config.context_length)
    if iterations < 0 or log_every < 1:
        raise ValueError(
            f"need iterations >= 0 and log_every >= 1, got {iterations} and {log_every}"
        )
    with evaluating(model), frozen(model), torch.enable_grad():
        soft = initial_embeddings(gpt, num_embeddings, init, seed).requires_grad_(True)
        optimizer = torch.optim.Adam([soft], lr=learning_rate)
        history = []
        for iteration in range(iterations + 1):
            loss = teacher_forced_loss(gpt, soft, targets)
            if iteration % log_every == 0 or iteration == iterations:
                history.append(
                    inversion_step(model, soft.detach(), targets, iteration, loss.item())
                )
            if iteration == iterations:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return InversionResult(target, history, soft.detach().cpu())


def target_tokens(model: nn.Module, target: str, include_eos: bool) -> Tensor:
    tokens = model.encode(target)
    if include_eos:
        tokens = torch.cat([tokens, tokens.new_tensor([model.vocab.eos])])
    if len(tokens) == 0:
        raise ValueError("the target is empty: give a sentence, or ask for its <eos>")
    return tokens


def check_fits(num_embeddings: int, num_targets: int, context_length: int) -> None:
    if num_embeddings < 1:
        raise ValueError(f"num_embeddings must be at least 1, got {num_embeddings}")
    if num_embeddings + num_targets > context_length:
        raise ValueError(
            f"{num_embeddings} soft embeddings and {num_targets} target tokens need "
            f"{num_embeddings + num_targets} positions (<bos>, the soft prompt and every "
            f"target token but the last), more than the context length {context_length}; "
            f"shorten the target or use fewer embeddings"
        )


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """No parameter of ``model`` requires a gradient inside the block; each gets its own
    flag back after it."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    model.requires_grad_(False)
    try:
        yield model
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def initial_embeddings(
    gpt: nn.Module, num_embeddings: int, init: Tensor | None, seed: int
) -> Tensor:
    """A fresh ``[num_embeddings, width]`` copy of ``init``, or of the embeddings of
    random data tokens (not ``<bos>``)."""
    weight = gpt.token_embedding.weight
    if init is None:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, gpt.bos, (num_embeddings,), generator=generator)
        init = weight[ids.to(weight.device)]
    if tuple(init.shape) != (num_embeddings, weight.shape[1]):
        raise ValueError(
            f"init must be [num_embeddings, width] = [{num_embeddings}, {weight.shape[1]}], "
            f"got {list(init.shape)}"
        )
    return init.detach().to(weight.device, weight.dtype).clone()


def prefix_embeddings(gpt: nn.Module, soft: Tensor) -> Tensor:
    """``[1, 1 + n, width]``: ``<bos>`` at position 0 and the soft prompt at ``1..n``, each
    with its position embedding."""
    bos = torch.full((1, 1), gpt.bos, dtype=torch.long, device=soft.device)
    positions = torch.arange(1, 1 + len(soft), device=soft.device)
    return torch.cat([gpt.embed(bos), (soft + gpt.position_embedding(positions))[None]], dim=1)


def teacher_forced_loss(gpt: nn.Module, soft: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy (nats per token) of ``targets`` read after ``<bos>`` and the
    soft prompt, each predicted from the true tokens before it."""
    inputs = torch.cat(
        [prefix_embeddings(gpt, soft), gpt.embed(targets[None, :-1], 1 + len(soft))], dim=1
    )
    logits = gpt.forward_embeddings(inputs)[0, len(soft) :]
    return F.cross_entropy(logits.float(), targets)


@torch.no_grad()
def greedy_continuation(gpt: nn.Module, soft: Tensor, length: int) -> Tensor:
    """``[length]`` tokens: the likeliest token after ``<bos>`` and the soft prompt, then
    after that one, and so on, reading each new token through the key-value cache."""
    cache = gpt.new_cache(1)
    logits = gpt.forward_embeddings(prefix_embeddings(gpt, soft), cache)[:, -1]
    tokens = []
    for step in range(length):
        token = logits.argmax(dim=-1)
        tokens.append(token)
        if step < length - 1:
            logits = gpt(token[:, None], cache)[:, -1]
    return torch.cat(tokens)


@torch.no_grad()
def nearest_tokens(model: nn.Module, soft: Tensor) -> list[str]:
    """The label of the data token (``<bos>`` left out) whose embedding has the largest
    cosine similarity with each soft vector."""
    table = model.gpt.token_embedding.weight[: model.gpt.bos]
    similarity = F.normalize(soft, dim=-1) @ F.normalize(table, dim=-1).T
    return [token_label(model, int(token)) for token in similarity.argmax(dim=-1)]


def token_label(model: nn.Module, token: int) -> str:
    if token == model.vocab.eos:
        return EOS_LABEL
    return character_label(model.vocab.characters[token])


def inversion_step(
    model: nn.Module, soft: Tensor, targets: Tensor, iteration: int, loss: float
) -> InversionStep:
    tokens = greedy_continuation(model.gpt, soft, len(targets))
    return InversionStep(
        iteration=iteration,
        loss=loss,
        continuation=model.decode(tokens),
        exact=torch.equal(tokens, targets),
        nearest_tokens=nearest_tokens(model, soft),
    )


def format_inversion(result: InversionResult) -> str:
    """The history as a plain-text table (iteration, loss, exact match, continuation,
    nearest tokens), for printing in a notebook."""
    quoted = [repr(step.continuation) for step in result.history]
    column = max(len("continuation"), *map(len, quoted))
    lines = [
        f"target {result.target!r}",
        f"{'iter':>6} {'loss':>8} {'exact':>5}  {'continuation':<{column}}  nearest tokens",
    ]
    for step, continuation in zip(result.history, quoted, strict=True):
        lines.append(
            f"{step.iteration:>6} {step.loss:>8.4f} {'yes' if step.exact else 'no':>5}  "
            f"{continuation:<{column}}  {' '.join(step.nearest_tokens)}"
        )
    return "\n".join(lines)
