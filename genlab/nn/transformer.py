"""A small GPT (Radford et al., 2018/2019) with a preallocated key-value cache.

Tokens ``0..vocab_size-1`` are the data; one more id, ``bos = vocab_size``, starts every
sequence, so the first data token is predicted from ``<bos>`` alone. Blocks are pre-norm
(layer norm, causal self-attention, residual; layer norm, MLP, residual), positions are
learned, and attention goes through ``scaled_dot_product_attention`` unless the caller
asks for the attention weights.

Decoding with a cache: every layer keeps the keys and values of the positions already
seen in a buffer allocated once for the whole context. A step feeds only the new tokens;
their queries attend to every cached key and to the new keys up to their own position.
The mask of such a step is not the square lower triangle: a query at absolute position
``t`` sees keys ``0..t``, which is a lower triangle shifted right by the cached length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.nn.distributions import sample_categorical


@dataclass
class GPTConfig:
    """Sizes of a GPT. ``context_length`` counts the ``<bos>`` token."""

    vocab_size: int
    context_length: int
    width: int = 128
    num_heads: int = 4
    num_layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.width % self.num_heads != 0:
            raise ValueError(
                f"width ({self.width}) must be divisible by num_heads ({self.num_heads})"
            )


class KVCache:
    """Keys and values of every layer, ``[layers, B, heads, context, head_dim]``,
    allocated once; ``length`` positions are filled."""

    def __init__(
        self, config: GPTConfig, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        head_dim = config.width // config.num_heads
        shape = (config.num_layers, batch_size, config.num_heads, config.context_length, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def extend(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' keys and values ``[B, heads, t, head_dim]`` of one
        layer after the cached ones, and return all of that layer's so far."""
        end = self.length + keys.shape[2]
        self.keys[layer, :, :, self.length : end] = keys
        self.values[layer, :, :, self.length : end] = values
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]


def causal_mask(num_queries: int, num_keys: int, device: torch.device) -> Tensor:
    """``[q, k]`` booleans, True where query i (the last ``q`` of ``k`` positions) may
    attend to key j: ``j <= i + (k - q)``."""
    offset = num_keys - num_queries
    queries = torch.arange(num_queries, device=device)[:, None]
    return torch.arange(num_keys, device=device)[None, :] <= queries + offset


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees itself and earlier ones."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        self.dropout = config.dropout

    def forward(
        self,
        x: Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        return_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        b, t, width = x.shape
        q, k, v = (
            part.view(b, t, self.num_heads, -1).transpose(1, 2)
            for part in self.qkv(x).split(width, dim=2)
        )
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        dropout = self.dropout if self.training else 0.0
        if return_weights:
            y, weights = explicit_attention(q, k, v, dropout)
        else:
            y, weights = sdpa_attention(q, k, v, dropout), None
        return self.out(y.transpose(1, 2).reshape(b, t, width)), weights


def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float) -> Tensor:
    """Fused attention. A square causal mask when no keys are cached; otherwise the
    shifted mask (none at all for a single new query, which sees every key)."""
    num_queries, num_keys = q.shape[2], k.shape[2]
    if num_queries == num_keys:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    mask = None if num_queries == 1 else causal_mask(num_queries, num_keys, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float) -> tuple[Tensor, Tensor]:
    """The same attention written out, also returning the weights ``[B, heads, q, k]``."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    mask = causal_mask(q.shape[2], k.shape[2], q.device)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return F.dropout(weights, dropout, training=dropout > 0) @ v, weights


class Block(nn.Module):
    """Pre-norm transformer block: attention and a 4x-wide GELU MLP, each residual."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width)
        self.attention = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(
            nn.Linear(config.width, 4 * config.width),
            nn.GELU(),
            nn.Linear(4 * config.width, config.width),
            nn.Dropout(config.dropout),
        )

    def forward(
        self, x: Tensor, cache: KVCache | None, layer: int, return_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        attended, weights = self.attention(self.norm1(x), cache, layer, return_weights)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


class GPT(nn.Module):
    """Decoder-only transformer over ``vocab_size`` tokens plus ``<bos>``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.bos = config.vocab_size
        self.token_embedding = nn.Embedding(config.vocab_size + 1, config.width)
        self.position_embedding = nn.Embedding(config.context_length, config.width)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size)

    def embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Token plus position embeddings ``[B, t, width]`` of tokens at positions
        ``start..start+t-1``."""
        end = start + tokens.shape[1]
        if end > self.config.context_length:
            raise ValueError(
                f"sequence of {end} tokens (with <bos>) exceeds the context length "
                f"{self.config.context_length}"
            )
        return self.token_embedding(tokens) + self.position_embedding.weight[start:end]

    def forward(
        self,
        tokens: Tensor,
        cache: KVCache | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Next-token logits ``[B, t, vocab_size]`` for tokens ``[B, t]`` (``<bos>``
        included where the sequence starts). With a cache, ``tokens`` are the positions
        after the cached ones, and the cache is extended by them. With
        ``return_attention``, also the weights ``[B, heads, t, keys]`` of every layer."""
        start = 0 if cache is None else cache.length
        return self.forward_embeddings(self.embed(tokens, start), cache, return_attention)

    def forward_embeddings(
        self,
        x: Tensor,
        cache: KVCache | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``forward`` from input embeddings ``[B, t, width]`` (position embeddings
        included), for analyses that optimise the inputs themselves."""
        x = self.dropout(x)
        attention = []
        for layer, block in enumerate(self.blocks):
            x, weights = block(x, cache, layer, return_attention)
            attention.append(weights)
        if cache is not None:
            cache.length += x.shape[1]
        logits = self.head(self.norm(x))
        return (logits, attention) if return_attention else logits

    def new_cache(self, batch_size: int) -> KVCache:
        parameter = self.head.weight
        return KVCache(self.config, batch_size, parameter.device, parameter.dtype)

    def with_bos(self, tokens: Tensor) -> Tensor:
        """``[B, 1 + t]``: ``<bos>`` then ``tokens``."""
        bos = torch.full((len(tokens), 1), self.bos, dtype=torch.long, device=tokens.device)
        return torch.cat([bos, tokens], dim=1)

    def generate_from_bos(self, num_samples: int, length: int, **options) -> Tensor:
        """``generate`` from ``<bos>`` alone: ``[num_samples, length]`` tokens."""
        empty = torch.zeros(num_samples, 0, dtype=torch.long, device=self.head.weight.device)
        return self.generate(empty, length, **options)

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        greedy: bool = False,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        on_step: Callable[[int], None] | None = None,
        stop_token: int | None = None,
        allowed: Tensor | None = None,
    ) -> Tensor:
        """Continue ``prompt`` ``[B, t]`` (``t`` may be 0; no ``<bos>``) by up to
        ``max_new_tokens`` tokens; returns ``[B, t + new]``.

        Each step samples from the last position's logits divided by ``temperature``,
        restricted to the ``top_k`` likeliest tokens and to the smallest set whose
        probability reaches ``top_p``; ``greedy`` takes the likeliest token instead.
        With and without the cache the same generator gives the same tokens: the cached
        path computes the same logits, touching only the new token in every layer.

        The model reads ``<bos>`` and a view of the latest tokens. When the view would
        overflow the context, it drops its older half and the model reads the newer half
        afresh (a prompt longer than the context starts with its last tokens in view),
        so sequences may be longer than the context.
        Once every row has drawn ``stop_token``, generation ends early; a row that drew it
        earlier is padded with it. ``on_step(i)`` is called after token ``i`` (timing).
        ``allowed`` ``[max_new_tokens, vocab_size]``, booleans, restricts new token ``i``
        to the ids of row ``i`` (the others' logits become ``-inf``), for sequences
        whose positions draw from different parts of the vocabulary.
        """
        context = self.config.context_length
        batch, length = prompt.shape
        tokens = prompt.new_empty(batch, length + max_new_tokens)
        tokens[:, :length] = prompt
        view_start = max(0, length - (context - 1))
        keep = max(1, (context - 1) // 2)
        cache = self.new_cache(batch) if use_cache else None

        def read_view() -> Tensor:
            if cache is not None:
                cache.length = 0
            return self(self.with_bos(tokens[:, view_start:length]), cache)[:, -1]

        logits = read_view()
        finished = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
        for step in range(max_new_tokens):
            if allowed is not None:
                logits = logits.masked_fill(~allowed[step], float("-inf"))
            token = next_token(logits, temperature, top_k, top_p, greedy, generator)
            if stop_token is not None:
                token = token.masked_fill(finished, stop_token)
                finished |= token == stop_token
            tokens[:, length] = token
            length += 1
            if on_step is not None:
                on_step(step)
            if step == max_new_tokens - 1 or bool(finished.all()):
                break
            if 1 + length - view_start > context:
                view_start = length - keep
                logits = read_view()
            elif cache is not None:
                logits = self(token[:, None], cache)[:, -1]
            else:
                logits = read_view()
        return tokens[:, :length]


def filter_logits(logits: Tensor, top_k: int | None, top_p: float | None) -> Tensor:
    """``logits [B, V]`` with every token outside the top-k and outside the nucleus of
    probability ``top_p`` set to ``-inf`` (the likeliest token always stays)."""
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(
    logits: Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    greedy: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """One token per row of ``logits [B, V]``."""
    if greedy:
        return logits.argmax(dim=-1)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (or use greedy), got {temperature}")
    return sample_categorical(filter_logits(logits / temperature, top_k, top_p), generator)
