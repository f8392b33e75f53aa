"""The figures a course write-up can show, and the files in a run folder that hold them.

Each kind names files that genlab's callbacks write at the end of ``fit`` (see
``genlab/callbacks``); a manifest lists kinds by name, and ``genlab report`` looks for
their files in each run folder, naming any that are missing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FigureKind:
    """What a figure shows (its caption) and the run-folder files it is drawn from."""

    caption: str
    files: tuple[str, ...]


FIGURE_KINDS: dict[str, FigureKind] = {
    "training_curve": FigureKind(
        "Training curve: train NLL per step and validation NLL (nats/dim)", ("curves.png",)
    ),
    "loss_curve": FigureKind("Training loss (not a likelihood) per step", ("loss.png",)),
    "samples": FigureKind("Samples after training", ("samples.png",)),
    "text_samples": FigureKind("Text samples after training", ("samples.txt",)),
    "distribution": FigureKind("Learned distribution against the data", ("distribution.png",)),
    "receptive_field": FigureKind(
        "Receptive field of the middle pixel, before and after training",
        ("receptive_field_start.png", "receptive_field_end.png"),
    ),
    "queries": FigureKind("Probability queries on test images", ("queries.png",)),
    "reconstructions": FigureKind(
        "Test images over their reconstructions", ("reconstructions.png",)
    ),
    "sampling_speed": FigureKind(
        "Seconds per sampling step with and without the KV cache", ("sampling_speed.png",)
    ),
    "manifold": FigureKind("Decoded grid of codes at normal quantiles", ("manifold.png",)),
    "codes": FigureKind("Codes of test images by label over prior draws", ("codes.png",)),
    "multimodal": FigureKind(
        "Caption to image, image to caption and unconditional samples",
        (
            "multimodal_caption_to_image.png",
            "multimodal_image_to_caption.png",
            "multimodal_unconditional.png",
        ),
    ),
    "attention": FigureKind(
        "Attention maps of a prompt", ("attention_heatmaps.png", "attention_text.png")
    ),
    "sentence_log_probs": FigureKind(
        "Log-probabilities of sentences, likeliest first", ("sentence_log_probs.txt",)
    ),
    "embedding_inversion": FigureKind(
        "A soft prompt fitted to make the model say a target", ("embedding_inversion.txt",)
    ),
    "schedules": FigureKind("Noise schedules", ("schedules.png",)),
    "forward_trajectory": FigureKind("Forward (noising) trajectory", ("forward_trajectory.png",)),
    "reverse_trajectories": FigureKind(
        "Reverse (sampling) trajectories", ("reverse_trajectories.png",)
    ),
    "sample_seeds": FigureKind("Samples per seed", ("sample_seeds.png",)),
    "samples_by_steps": FigureKind("Samples by number of steps", ("samples_by_steps.png",)),
    "log_probs": FigureKind("Log-probabilities of points", ("log_probs.png",)),
    "steering": FigureKind("Steering a sample to a target", ("steering.png",)),
    "classes": FigureKind("Class-conditional samples", ("classes.png",)),
}


def caption_of(file: str) -> str:
    """The caption of the figure kind a file belongs to, or the file's own name."""
    for kind in FIGURE_KINDS.values():
        if file in kind.files:
            return kind.caption if len(kind.files) == 1 else f"{kind.caption} ({file})"
    return file
