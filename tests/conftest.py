"""Fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genlab.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
TINY_VQVAE = dict(num_codes=8, code_dim=4, hidden_channels=8, num_residual_blocks=1)


@pytest.fixture(scope="session")
def vqvae_run(tmp_path_factory) -> tuple[Path, Path]:
    """A course-style array file of random 28x28 "digits" with labels, and the last
    checkpoint of a tiny VQ-VAE fitted on it for one epoch through the ``genlab``
    command (run folder under a temporary directory). The token models build on it."""
    folder = tmp_path_factory.mktemp("vqvae")
    rng = np.random.default_rng(0)
    contents = {}
    for split, count in (("train", 24), ("test", 8)):
        contents[split] = rng.integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)
        contents[f"{split}_labels"] = rng.integers(0, 10, count)
    np.savez(folder / "digits.npz", **contents)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        fit = run_cli(
            [
                "fit",
                f"--config={REPO}/configs/vqvae/colored_mnist.yaml",
                f"--data.init_args.path={folder / 'digits.npz'}",
                "--data.init_args.batch_size=8",
                *[f"--model.init_args.{name}={value}" for name, value in TINY_VQVAE.items()],
                "--trainer.accelerator=cpu",
                "--trainer.max_epochs=1",
                "--trainer.callbacks=[]",
            ]
        )
    return folder / "digits.npz", folder / fit.trainer.log_dir / "checkpoints" / "last.ckpt"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """The test's tmp folder as the working folder, where runs go."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def digits_file(tmp_path, monkeypatch):
    """Random 28x28 grayscale "digits" with labels in a course-style array file; runs
    go to tmp."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    contents = {}
    for split, count in (("train", 24), ("test", 8)):
        contents[split] = rng.integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)
        contents[f"{split}_labels"] = rng.integers(0, 10, count)
    np.savez(tmp_path / "digits.npz", **contents)
    return tmp_path / "digits.npz"
