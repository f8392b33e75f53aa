"""Attention maps of a GPT reading a fixed prompt."""

from __future__ import annotations

import lightning as L

from genlab.analysis import (
    attention_from,
    attention_maps,
    plot_attention_heatmaps,
    plot_attention_on_text,
    token_labels,
)
from genlab.callbacks.io import log_figure
from genlab.callbacks.periodic import EveryNValidations


class AttentionMaps(EveryNValidations):
    """At the end of ``fit``, and after every ``every_n_validations``-th validation when
    that is positive, reads ``<bos>`` + ``prompt`` and draws two pictures:

    * ``attention_heatmaps.png`` (TensorBoard ``attention_heatmaps``): every layer's and
      head's map, and each layer's mean over heads (see ``plot_attention_heatmaps``);
    * ``attention_text.png`` (``attention_text``): the prompt with each character
      shaded by the attention it gets from ``query_position``, averaged over heads, in
      ``layer``, or averaged over every layer when ``layer`` is None (a summary of what
      the whole stack reads; each layer's own map is in the heatmaps).

    Positions count ``<bos>`` as 0, so character ``i`` of the prompt is position
    ``i + 1``; negative positions count from the end (-1 is the last character). The
    PNGs are overwritten each time; TensorBoard keeps every step. The prompt is checked
    against the model's vocabulary and context when ``fit`` starts.

    Needs a model with ``check_fits_context`` and a ``gpt`` that returns attention weights
    (CharGPT).
    """

    def __init__(
        self,
        prompt: str = "to be or not to be that is the question\n",
        query_position: int = -1,
        layer: int | None = None,
        every_n_validations: int = 0,
    ) -> None:
        super().__init__(every_n_validations)
        if not prompt:
            raise ValueError("the attention prompt is empty; give at least one character")
        if not -(len(prompt) + 1) <= query_position <= len(prompt):
            raise ValueError(
                f"query_position {query_position} is outside the {len(prompt) + 1} positions "
                f"of <bos> + the prompt"
            )
        self.prompt = prompt
        self.query_position = query_position
        self.layer = layer

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.check_fits_context(self.prompt, "the attention prompt")
        config = pl_module.gpt.config
        if self.layer is not None and not -config.num_layers <= self.layer < config.num_layers:
            raise ValueError(f"layer {self.layer} is outside the {config.num_layers} layers")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        weights = attention_maps(pl_module, self.prompt)
        labels = token_labels(self.prompt)
        heatmaps = plot_attention_heatmaps(weights, labels)
        heatmaps.suptitle(f"attention at step {trainer.global_step}")
        log_figure(trainer, "attention_heatmaps", heatmaps, "attention_heatmaps.png")
        row = attention_from(weights, self.query_position, self.layer)
        layers = "mean of layers" if self.layer is None else f"layer {self.layer}"
        query = self.query_position % len(labels)
        title = (
            f"attention from position {query} ({labels[query]}), mean of heads, {layers}, "
            f"step {trainer.global_step}"
        )
        text = plot_attention_on_text(row, labels, self.query_position, title=title)
        log_figure(trainer, "attention_text", text, "attention_text.png")
