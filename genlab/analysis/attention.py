"""Where a GPT looks: the attention weights of every layer and head for one prompt.

The model reads ``<bos>`` and then the prompt, so the maps have ``T = len(text) + 1``
positions, position 0 being ``<bos>`` and position ``i`` the ``i``-th character
(1-based). Row ``q`` of a map is how query position ``q`` shares its attention among
the keys ``0..q``: it sums to one and is zero after ``q`` (the model is causal).

Maps come from the model's public ``gpt`` (``with_bos`` and ``forward(tokens,
return_attention=True)``) and ``encode``, in eval mode without gradients; the pictures
are matplotlib figures that the caller shows or saves.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor, nn

from genlab.analysis.text import BOS_LABEL, SHOWN, character_label
from genlab.nn.modes import evaluating

CELL_INCHES = 0.22  # side of one character's cell in the text picture
LINE_STEP = 1.5  # distance between lines of the text picture, in cells


@torch.no_grad()
def attention_maps(model: nn.Module, text: str) -> Tensor:
    """Attention weights ``[layers, heads, T, T]`` (float, CPU) of the model reading
    ``<bos>`` and ``text``; ``T = len(text) + 1``, position 0 is ``<bos>``. ``text`` must
    fit in the context with ``<bos>``. Needs a model with ``encode`` and ``gpt``."""
    tokens = model.gpt.with_bos(model.encode(text)[None])
    with evaluating(model):
        _, weights = model.gpt(tokens, return_attention=True)
    return torch.stack(weights)[:, 0].float().cpu()


def head_average(weights: Tensor) -> Tensor:
    """``[layers, T, T]``: the mean over heads of ``weights [layers, heads, T, T]``, itself
    a distribution over keys in every row."""
    return weights.mean(dim=1)


def attention_from(weights: Tensor, query: int, layer: int | None = None) -> Tensor:
    """``[T]``: how much query position ``query`` (negative counts from the end) attends
    to each position, averaged over heads, in ``layer`` or averaged over layers too when
    ``layer`` is None."""
    averaged = head_average(weights)
    maps = averaged.mean(dim=0) if layer is None else averaged[layer]
    return maps[query]


def token_labels(text: str) -> list[str]:
    """Axis labels of the ``T`` positions: ``<bos>``, then the characters with newline,
    tab and space made visible."""
    return [BOS_LABEL] + [character_label(character) for character in text]


def plot_attention_heatmaps(weights: Tensor, labels: Sequence[str]) -> Figure:
    """A grid of heatmaps, one row per layer and one column per head plus one for the
    mean over heads; queries down, keys across, labelled with ``labels`` (see
    ``token_labels``). One colour scale, 0 to 1, for every panel."""
    layers, heads, size, _ = weights.shape
    check_labels(size, labels)
    panels = torch.cat([weights, head_average(weights)[:, None]], dim=1)
    inches = min(6.0, max(2.5, 0.16 * size))
    fontsize = min(8.0, max(3.0, 0.7 * 72 * inches / size))
    shown = plain(labels)
    figure, axes = plt.subplots(
        layers,
        heads + 1,
        figsize=(inches * (heads + 1) + 1.0, inches * layers),
        squeeze=False,
        constrained_layout=True,
    )
    for layer in range(layers):
        for column in range(heads + 1):
            ax = axes[layer, column]
            image = ax.imshow(panels[layer, column].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            head = f"head {column}" if column < heads else "mean of heads"
            ax.set_title(f"layer {layer}, {head}", fontsize=9)
            ax.set_xticks(range(size), shown, rotation=90, fontsize=fontsize)
            ax.set_yticks(range(size), shown, fontsize=fontsize)
    for ax in axes[-1]:
        ax.set_xlabel("key (attended to)")
    for ax in axes[:, 0]:
        ax.set_ylabel("query (attending)")
    figure.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    return figure


def plot_attention_on_text(
    weights_row: Tensor,
    labels: Sequence[str],
    query: int,
    line_width: float = 40.0,
    title: str | None = None,
) -> Figure:
    """The positions drawn as a line of text (wrapped after a newline and at
    ``line_width`` cells), each on a background as dark as the attention
    ``weights_row [T]`` it gets from position ``query``, which is framed and marked
    with a triangle. The colour scale runs from 0 to the row's largest weight, so the
    spread shows even when attention is thin; positions after the query, which a causal
    model cannot see from it, have grey letters, and letters on dark cells are white."""
    size = len(weights_row)
    check_labels(size, labels)
    if not -size <= query < size:
        raise ValueError(f"query position {query} is outside the {size} positions")
    query %= size
    cells = text_layout(labels, line_width)
    norm = Normalize(0.0, float(weights_row.max()) or 1.0)
    colours = plt.get_cmap("YlOrRd")
    right = max(x + width for x, _, width in cells)
    lines = cells[-1][1] + 1
    figure, ax = plt.subplots(
        figsize=(right * CELL_INCHES + 1.5, lines * LINE_STEP * CELL_INCHES + 1.0)
    )
    for position, ((x, line, width), label) in enumerate(zip(cells, plain(labels), strict=True)):
        y = line * LINE_STEP
        framed = position == query
        shade = float(norm(float(weights_row[position])))
        ax.add_patch(
            Rectangle(
                (x, y),
                width,
                1.0,
                facecolor=colours(shade),
                edgecolor="tab:blue" if framed else "lightgrey",
                linewidth=2.5 if framed else 0.5,
                zorder=2 if framed else 1,
            )
        )
        colour = "grey" if position > query else "white" if shade > 0.6 else "black"
        ax.text(
            x + width / 2,
            y + 0.5,
            label,
            ha="center",
            va="center",
            color=colour,
            family="monospace",
            fontsize=10,
        )
        if framed:
            ax.plot([x + width / 2], [y + 1.25], marker="^", color="tab:blue")
    ax.set_xlim(-0.2, right + 0.2)
    ax.set_ylim(lines * LINE_STEP, -0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    figure.colorbar(ScalarMappable(norm, colours), ax=ax, label="attention weight", shrink=0.8)
    ax.set_title(title or f"attention from position {query} ({labels[query]})", fontsize=10)
    return figure


def text_layout(labels: Sequence[str], line_width: float) -> list[tuple[float, int, float]]:
    """``(x, line, width)`` of each label's cell, in cell units: one unit for a single
    character, wider for longer labels such as ``<bos>``; a line ends after a newline
    and before a cell that would pass ``line_width``."""
    cells, x, line = [], 0.0, 0
    for label in labels:
        width = max(1.0, 0.5 * len(label) + 0.5)
        if x > 0 and x + width > line_width:
            x, line = 0.0, line + 1
        cells.append((x, line, width))
        x += width
        if label == SHOWN["\n"]:
            x, line = 0.0, line + 1
    return cells


def check_labels(size: int, labels: Sequence[str]) -> None:
    if len(labels) != size:
        raise ValueError(f"expected {size} labels, one per position, got {len(labels)}")


def plain(labels: Sequence[str]) -> list[str]:
    """Labels with ``$`` escaped, so that matplotlib draws them as they are, not as math."""
    return [label.replace("$", r"\$") for label in labels]
