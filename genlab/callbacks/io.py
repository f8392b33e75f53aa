"""Where pictures go: TensorBoard (when the run logs there) and a PNG in the run folder."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import matplotlib


def use_file_backend() -> None:
    """Draw figures for files (Agg), not for windows: pictures are written during
    training, often on machines without a display. A backend chosen by ``MPLBACKEND``
    is kept, which is how a Jupyter kernel selects its inline backend, so a notebook
    that imports genlab still shows its figures."""
    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")


use_file_backend()

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402


def run_dir(trainer: L.Trainer) -> Path:
    """The folder of the current run (the logger's version folder), created if needed.

    Worked out as ``trainer.log_dir`` does, less its broadcast: in a distributed run
    that property is a collective, and pictures are drawn on rank 0 alone, so it would
    wait forever for the other processes. Rank 0's answer is the one broadcast anyway."""
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        folder = trainer.default_root_dir
    elif isinstance(logger, (TensorBoardLogger, CSVLogger)):
        folder = logger.log_dir
    else:
        folder = logger.save_dir
    path = Path(folder or trainer.default_root_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def tensorboard_of(trainer: L.Trainer):
    """The TensorBoard ``SummaryWriter`` of the run, or None when it logs elsewhere."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def images_to_grid(images: torch.Tensor, num_levels: int, nrow: int) -> torch.Tensor:
    """A float grid in [0, 1] of integer images ``[N, C, H, W]`` with values ``0..K-1``."""
    scaled = images.detach().float().cpu() / (num_levels - 1)
    return make_grid(scaled, nrow=nrow, padding=1, pad_value=0.5)


def log_image_grid(
    trainer: L.Trainer, tag: str, grid: torch.Tensor, filename: str, scale: int = 4
) -> Path:
    """Log a ``[C, H, W]`` float image to TensorBoard and save it, enlarged by ``scale``
    with nearest-neighbour pixels, as ``run_dir/filename``."""
    writer = tensorboard_of(trainer)
    if writer is not None:
        writer.add_image(tag, grid, global_step=trainer.global_step)
    path = run_dir(trainer) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    enlarged = grid.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    save_image(enlarged, path)
    return path


def log_figure(trainer: L.Trainer, tag: str, figure: Figure, filename: str) -> Path:
    """Save a matplotlib figure as ``run_dir/filename``, log it to TensorBoard, close it."""
    path = run_dir(trainer) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    writer = tensorboard_of(trainer)
    if writer is not None:
        writer.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    plt.close(figure)
    return path
