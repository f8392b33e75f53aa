"""Fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genlab.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
TINY_VQVAE = dict(num_codes=8, code_dim=4, hidden_channels=8, num_residual_blocks=1)


def fit_tiny_vqvae(folder: Path, colors: str) -> tuple[Path, Path]:
    """A course-style array file of random 28x28 "digits" with labels in ``folder``, and
    the last checkpoint of a tiny VQ-VAE with ``colors`` tokens fitted on it for one
    epoch through the ``genlab`` command (run folder under ``folder``)."""
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
                f"--model.init_args.colors={colors}",
                "--trainer.accelerator=cpu",
                "--trainer.max_epochs=1",
                "--trainer.callbacks=[]",
            ]
        )
    return folder / "digits.npz", folder / fit.trainer.log_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def vqvae_run(tmp_path_factory) -> tuple[Path, Path]:
    """The digits file and checkpoint of a tiny VQ-VAE whose tokens are its 7x7 code
    grid (``colors: local``, 8 codes); the token models build on it."""
    return fit_tiny_vqvae(tmp_path_factory.mktemp("vqvae"), "local")


@pytest.fixture(scope="session")
def global_vqvae_run(tmp_path_factory) -> tuple[Path, Path]:
    """The same with global colours (the configs' tokenizer): 51 tokens, foreground and
    background among 64 colour ids (8..71) then 49 stroke codes (0..7)."""
    return fit_tiny_vqvae(tmp_path_factory.mktemp("global_vqvae"), "global")


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
