"""Character GPT on Tiny Shakespeare: validation loss and wall time of nanoGPT's small
CPU configuration (4 layers, 4 heads, width 128, batch 12, 2,000 steps, no dropout,
AdamW 1e-3 with 100 warm-up steps and cosine decay to 1e-4, gradient clipping at 1).

Text is ``../shared/datasets/tinyshakespeare.txt``: the first 90% trains, the last 10%
validates, read in back-to-back windows. nanoGPT's 64 positions each predict a character
from 1..64 characters before it; here ``<bos>`` takes position 0, so the model gets 65
positions (``context_length`` 65) and the comparable figure averages positions 1..64.
The figure over all 65 positions, the first predicted from no context, is what
``val/nats_per_dim`` logs. nanoGPT reports about 1.88 on a 20-batch estimate.

    python benchmarks/char_gpt.py --runs 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATASETS, median, write_result  # noqa: E402

from genlab.datamodules import TextDataModule  # noqa: E402
from genlab.lightning_modules import CharGPT  # noqa: E402
from genlab.nn.modes import evaluating  # noqa: E402

NANOGPT_REFERENCE_VAL_LOSS = 1.88
CONTEXT = 64


def shakespeare() -> TextDataModule:
    path = SHARED_DATASETS / "tinyshakespeare.txt"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: this benchmark reads Tiny Shakespeare from there")
    data = TextDataModule(str(path), context_length=CONTEXT + 1, val_fraction=0.1, batch_size=12)
    data.setup()
    return data


@torch.no_grad()
def validation_nats(model: CharGPT, data: TextDataModule) -> dict:
    """Mean validation nats per character over all positions, and over positions
    1..64 (each with at least one character of context), as nanoGPT measures."""
    total = torch.zeros(CONTEXT + 1, dtype=torch.float64)
    count = 0
    with evaluating(model):
        for inputs, targets in data.val_dataloader():
            nats = F.cross_entropy(model(inputs).transpose(1, 2), targets, reduction="none")
            total += nats.double().sum(dim=0)
            count += len(inputs)
    per_position = total / count
    return {
        "val_nats_per_char_all_positions": float(per_position.mean()),
        "val_loss_nanogpt_positions": float(per_position[1:].mean()),
        "val_nats_first_position": float(per_position[0]),
        "val_windows": count,
    }


def train_once(data: TextDataModule, steps: int, seed: int) -> dict:
    L.seed_everything(seed)
    model = CharGPT(data.vocabulary, CONTEXT + 1, width=128, num_heads=4, num_layers=4)
    trainer = L.Trainer(
        max_steps=steps,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    seconds = time.perf_counter() - started
    result = {
        "seed": seed,
        "train_seconds": seconds,
        "train_tokens_per_second": steps * 12 * (CONTEXT + 1) / seconds,
        "final_train_loss": float(trainer.callback_metrics["train/loss"]),
        **validation_nats(model, data),
        "sample": model.sample_text(
            1, "ROMEO:", generator=torch.Generator().manual_seed(0), max_new_tokens=300
        )[0],
    }
    print({k: v for k, v in result.items() if k != "sample"}, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="seeds 0..runs-1")
    args = parser.parse_args()
    data = shakespeare()
    runs = [train_once(data, args.steps, seed) for seed in range(args.runs)]
    summary = {
        key: median([run[key] for run in runs])
        for key in (
            "val_loss_nanogpt_positions",
            "val_nats_per_char_all_positions",
            "train_seconds",
            "train_tokens_per_second",
        )
    }
    path = write_result(
        "char_gpt_tinyshakespeare",
        {
            "data": "tinyshakespeare.txt, first 90% train / last 10% validation",
            "config": {
                "layers": 4,
                "heads": 4,
                "width": 128,
                "characters_of_context": CONTEXT,
                "batch_size": 12,
                "steps": args.steps,
                "dropout": 0.0,
            },
            "nanogpt_reference_val_loss": NANOGPT_REFERENCE_VAL_LOSS,
            "median": summary,
            "runs": runs,
        },
    )
    print(f"wrote {path}: {summary}")


if __name__ == "__main__":
    main()
