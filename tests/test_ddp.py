"""Distributed data parallel training on two CPU processes, through the ``genlab`` command.

Lightning's ``ddp`` strategy starts the other process by running the command line again,
so every run here is a subprocess (``python -m genlab.cli``, or a script of several
commands that both processes run), never the pytest process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# 40 shapes less a 10% validation split leave 36 training images: one batch of 36 for a
# single process, or one of 18 on each of two, is the whole set, whatever the shuffling.
TRAIN_IMAGES = 36
TINY_PIXELCNN = [
    f"--config={REPO}/configs/pixelcnn/shapes.yaml",
    "--model.init_args.hidden_channels=8",
    "--model.init_args.num_layers=2",
    "--model.init_args.kernel_size=3",
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=8",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
LOSS_RECORDER = '''
import json
import lightning as L
import torch


class LossRecorder(L.Callback):
    """Writes the training loss of every step of this process, and a number drawn from
    torch's random state after it, to losses_rank<R>.json."""

    def __init__(self):
        self.losses, self.draws = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.draws.append(float(torch.rand(())))

    def on_train_end(self, trainer, pl_module):
        record = {"losses": self.losses, "draws": self.draws, "world_size": trainer.world_size}
        with open(f"losses_rank{trainer.global_rank}.json", "w") as file:
            json.dump(record, file)
'''


TINY_MNIST = ["--data.init_args.path=digits.npz", "--data.init_args.batch_size=8"]
TINY_SHAPES = [
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=16",
    "--data.init_args.batch_size=8",
]
TINY_CONVS = [
    "--model.init_args.hidden_channels=8",
    "--model.init_args.num_layers=1",
    "--model.init_args.kernel_size=3",
]
TINY_GPT = [
    "--model.init_args.width=16",
    "--model.init_args.num_heads=2",
    "--model.init_args.num_layers=1",
]
TINY_CODES = [
    "--model.init_args.latent_dim=2",
    "--model.init_args.hidden_channels=4",
    "--model.init_args.discriminator_hidden_units=8",
]
# One configuration of every model family, shrunk, with the pictures of its config.
# The VQ-VAE comes before the token models, which read its last checkpoint.
FAMILIES = {
    "histogram/course1": ["--data.init_args.batch_size=16"],
    "logistic_mixture/course1": ["--data.init_args.batch_size=16"],
    "autoregressive2d/procedural": [
        "--data.init_args.num_samples=2000",
        "--model.init_args.hidden_units=8",
    ],
    "made/shapes": [*TINY_SHAPES, "--model.init_args.hidden_units=[16]"],
    "pixelcnn/shapes": [*TINY_SHAPES, *TINY_CONVS],
    "pixelcnn_made/colored_shapes": [
        *TINY_SHAPES,
        *TINY_CONVS,
        "--model.init_args.made_hidden_units=[8]",
    ],
    "gated_pixelcnn/mnist": [
        "--data.init_args.path=small_digits.npz",
        "--data.init_args.batch_size=8",
        "--model.init_args.hidden_channels=8",
        "--model.init_args.num_layers=3",
    ],
    "igpt/shapes": [*TINY_SHAPES, *TINY_GPT, "--model.init_args.warmup_steps=2"],
    "char_gpt/tinyshakespeare": [
        "--data.init_args.path=play.txt",
        "--data.init_args.batch_size=8",
        *TINY_GPT,
        "--trainer.max_steps=4",
        "--trainer.val_check_interval=2",
    ],
    "vqvae/colored_mnist": [
        *TINY_MNIST,
        "--model.init_args.num_codes=8",
        "--model.init_args.code_dim=4",
        "--model.init_args.hidden_channels=8",
        "--model.init_args.num_residual_blocks=1",
    ],
    "vq_prior/colored_mnist": [*TINY_MNIST, *TINY_GPT],
    "multimodal/captioned_mnist": [*TINY_MNIST, *TINY_GPT],
    "vae/mnist": [*TINY_MNIST, *TINY_CODES[:2], "--model.init_args.test_iw_samples=4"],
    "aae/mnist_2d": [*TINY_MNIST, *TINY_CODES],
    "diffusion/square_classes": [
        "--data.init_args.num_train=256",
        "--data.init_args.num_val=64",
        "--data.init_args.num_test=64",
        "--model.init_args.hidden_units=16",
        "--model.init_args.likelihood_steps=4",
        "--trainer.check_val_every_n_epoch=1",
    ],
}
PREDICTED = "pixelcnn/shapes"  # predicts 7 samples too, 4 on rank 0 and 3 on rank 1
EVERY_FAMILY = f"""
import json
from pathlib import Path

from genlab.cli import run_cli

families = json.loads(Path("families.json").read_text())
vqvae_checkpoint = None
for config, arguments in families.items():
    if config.split("/")[0] in ("vq_prior", "multimodal"):
        arguments = [*arguments, f"--model.init_args.vqvae_checkpoint={{vqvae_checkpoint}}"]
    arguments = [f"--config={REPO}/configs/{{config}}.yaml", *arguments]
    fit = run_cli(["fit", *arguments])
    last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    if config.startswith("vqvae"):
        vqvae_checkpoint = last
    run_cli(["test", *arguments, f"--ckpt_path={{last}}"])
    if config == "{PREDICTED}":
        samples = "--data.init_args.predict_samples=7"
        run_cli(["predict", *arguments, f"--ckpt_path={{last}}", samples])
    trainer = fit.trainer
    with open(f"done_rank{{trainer.global_rank}}_of_{{trainer.world_size}}.txt", "a") as done:
        done.write(config + "\\n")
"""


def write_family_data(folder: Path) -> None:
    """Random course-style digit files (28x28 and 8x8) and a text for the char GPT,
    whose attention prompt (in its config) must fit the vocabulary and the context."""
    rng = np.random.default_rng(0)
    for name, size in (("digits.npz", 28), ("small_digits.npz", 8)):
        contents = {}
        for split, count in (("train", 40), ("test", 16)):
            contents[split] = rng.integers(0, 256, (count, size, size, 1), dtype=np.uint8)
            contents[f"{split}_labels"] = rng.integers(0, 10, count)
        np.savez(folder / name, **contents)
    # every character of the config's attention prompt and text analyses
    line = (
        "ROMEO:\nBut soft, what light through yonder window breaks? "
        "To be, or not to be, that is the question. "
    )
    (folder / "play.txt").write_text("".join(f"{line}{i}\n" for i in range(60)))


def genlab_fit(folder: Path, *args: str, timeout: int = 240) -> None:
    """``genlab fit`` in ``folder`` (its own process; ``LossRecorder`` importable there)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loss_recorder.py").write_text(LOSS_RECORDER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-m", "genlab.cli", "fit", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def recorded(folder: Path, rank: int) -> dict:
    return json.loads((folder / f"losses_rank{rank}.json").read_text())


def last_weights(folder: Path) -> dict[str, torch.Tensor]:
    (checkpoint,) = folder.glob("runs/*/*/version_0/checkpoints/last.ckpt")
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_two_processes_train_like_one_on_the_same_global_batch(tmp_path):
    """Two steps of SGD, each on the whole training set: one process with batches of 36
    against two DDP processes with batches of 18. DDP averages the gradients, so the
    weights must agree to float precision, and the mean of the two processes' losses
    must be the single process's loss at every step. Random draws during training
    differ between the processes, rank 0 drawing what the single process draws."""
    common = [
        *TINY_PIXELCNN,
        "--trainer.max_epochs=2",
        "--trainer.limit_val_batches=0",
        "--trainer.callbacks=[]",
        "--trainer.callbacks+=loss_recorder.LossRecorder",
        "--optimizer=torch.optim.SGD",
        "--optimizer.lr=0.5",
    ]
    genlab_fit(tmp_path / "one", *common, f"--data.init_args.batch_size={TRAIN_IMAGES}")
    genlab_fit(
        tmp_path / "two",
        *common,
        f"--data.init_args.batch_size={TRAIN_IMAGES // 2}",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
    )

    single = recorded(tmp_path / "one", 0)
    ranks = [recorded(tmp_path / "two", rank) for rank in (0, 1)]
    assert single["world_size"] == 1 and all(rank["world_size"] == 2 for rank in ranks)
    assert len(single["losses"]) == 2
    rank0, rank1 = (torch.tensor(rank["losses"], dtype=torch.float64) for rank in ranks)
    assert not torch.allclose(rank0, rank1), "each process must see its own half of the batch"
    expected = torch.tensor(single["losses"], dtype=torch.float64)
    torch.testing.assert_close((rank0 + rank1) / 2, expected, rtol=1e-5, atol=1e-6)
    assert expected[1] < expected[0], "the step must change the weights"

    one, two = last_weights(tmp_path / "one"), last_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6, msg=name)

    assert ranks[0]["draws"] == single["draws"]
    assert all(a != b for a, b in zip(ranks[0]["draws"], ranks[1]["draws"], strict=True))


@pytest.mark.slow
def test_every_family_fits_and_tests_under_ddp_with_its_pictures(tmp_path):
    """Each family's config, shrunk, fits for one epoch of two batches and is tested
    from its last checkpoint with two DDP processes (one pair runs every command).
    Nothing may hang (pictures are drawn on rank 0 alone), each run leaves one run
    folder with its checkpoints, test figures and pictures, and a prediction gathers
    the samples of both processes."""
    write_family_data(tmp_path)
    shared = [
        "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    families = {config: [*arguments, *shared] for config, arguments in FAMILIES.items()}
    (tmp_path / "families.json").write_text(json.dumps(families))
    (tmp_path / "every_family.py").write_text(EVERY_FAMILY)
    result = subprocess.run(
        [sys.executable, "every_family.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rank in (0, 1):
        done = (tmp_path / f"done_rank{rank}_of_2.txt").read_text().splitlines()
        assert done == list(FAMILIES), f"rank {rank}"
    runs = sorted(tmp_path.glob("runs/*/*/version_*"))
    assert len(runs) == len(FAMILIES), "one run folder per family: rank 1 makes none"
    for run in runs:
        assert (run / "checkpoints" / "last.ckpt").is_file(), run
        metrics = json.loads((run / "metrics.json").read_text())["metrics"]
        assert metrics and all(np.isfinite(list(metrics.values()))), run
        assert list(run.glob("*.png")) or (run / "samples.txt").is_file(), run
    (predicted,) = tmp_path.glob(f"runs/{PREDICTED}/version_0/predict_samples.pt")
    assert len(torch.load(predicted)) == 7, "rank 0 writes the samples of both processes"
