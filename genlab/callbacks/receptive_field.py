"""The receptive field of one predicted subpixel, before and after training."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from genlab.analysis import receptive_field
from genlab.callbacks.io import log_figure


class ReceptiveField(L.Callback):
    """Draws ``receptive_field(model, position)`` before the first training step (the
    initial weights; a resumed fit does not draw it again) and at the end of ``fit``,
    into ``receptive_field_start.png`` and ``receptive_field_end.png`` and TensorBoard's
    ``receptive_field``. ``position`` is
    ``(channel, row, col)``; by default the last channel of the middle pixel. Gradients
    are drawn on a log scale over four decades and exact zeros in black, so the causal
    cut-off and the blind spot show however small the far gradients are.

    Needs a conv-based image model whose ``forward`` takes float levels (see
    ``genlab.analysis.receptive_field``).
    """

    def __init__(self, position: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.position = position

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            self.draw(trainer, pl_module, "start")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer, pl_module, "end")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        channels, height, width = pl_module.image_shape
        position = self.position or (channels - 1, height // 2, width // 2)
        field = receptive_field(pl_module, position).numpy()
        figure, axes = plt.subplots(figsize=(4, 4))
        shown = np.ma.masked_equal(field, 0.0)
        top = float(field.max()) or 1.0
        colours = plt.get_cmap("magma").with_extremes(bad="black")
        image = axes.imshow(shown, cmap=colours, norm=LogNorm(vmin=top * 1e-4, vmax=top))
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        _, row, col = position
        axes.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, color="cyan", lw=2))
        axes.set_title(f"|d log p(x{tuple(position)}) / dx| ({when} of training)", fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
        log_figure(trainer, "receptive_field", figure, f"receptive_field_{when}.png")
