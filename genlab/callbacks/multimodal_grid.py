"""What a multimodal model makes of captions, of images, and of nothing: three grids."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from genlab.callbacks.io import log_figure


class MultimodalGrid(L.Callback):
    """At the end of ``fit``, an ``nrow`` x ``nrow`` grid per sampling mode, each image
    with its caption under it: images drawn for the first validation captions,
    captions drawn for the first validation images, and unconditional pairs. Logs
    ``multimodal/<mode>`` to TensorBoard and writes ``multimodal_<mode>.png``.

    Needs a model with ``caption_to_image``, ``image_to_caption``, ``unconditional`` and
    ``num_levels``, and a data module with ``vocabulary`` and captioned splits.
    """

    def __init__(self, nrow: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.nrow = nrow
        self.seed = seed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        self.draw(trainer, pl_module)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Sample the three modes, each from a generator seeded with ``seed``, and log them."""
        images, captions = self.examples(trainer)
        generated = pl_module.caption_to_image(captions, generator=self.generator())
        read = pl_module.image_to_caption(images.to(pl_module.device), generator=self.generator())
        drawn = pl_module.unconditional(len(images), generator=self.generator())
        panels = {
            "caption_to_image": (generated, captions),
            "image_to_caption": (images, read),
            "unconditional": (torch.stack([image for _, image in drawn]), [t for t, _ in drawn]),
        }
        for mode, (shown, texts) in panels.items():
            figure = captioned_grid(shown.cpu(), texts, pl_module.num_levels, self.nrow)
            log_figure(trainer, f"multimodal/{mode}", figure, f"multimodal_{mode}.png")

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def examples(self, trainer: L.Trainer) -> tuple[torch.Tensor, list[str]]:
        """The first ``nrow**2`` images and captions (as text) of the validation split
        (the training split when there is none)."""
        datamodule = trainer.datamodule
        dataset = datamodule.val_set if datamodule.val_set is not None else datamodule.train_set
        count = self.nrow**2
        captions = [datamodule.vocabulary.decode(ids) for ids in dataset.captions[:count]]
        return dataset.images[:count].long(), captions


def captioned_grid(images: torch.Tensor, captions: list[str], num_levels: int, nrow: int) -> Figure:
    """A figure of integer images ``[N, C, H, W]`` (levels ``0..K-1``) in rows of
    ``nrow``, each captioned underneath."""
    rows = -(-len(images) // nrow)
    figure, axes = plt.subplots(rows, nrow, figsize=(2.2 * nrow, 2.4 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            picture = images[index].float().div(num_levels - 1).permute(1, 2, 0)
            axis.imshow(picture.squeeze(-1), cmap="gray", vmin=0, vmax=1)
            axis.set_title(captions[index], fontsize=8, y=-0.18)
    figure.tight_layout()
    return figure
