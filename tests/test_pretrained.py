"""Shipped weights: exported without optimiser state, loaded by name, named on the command
line as ``pretrained:<name>``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from genlab import pretrained
from genlab.cli import main, run_cli

REPO = Path(__file__).resolve().parents[1]
TINY = [
    f"--config={REPO}/configs/pixelcnn/shapes.yaml",
    "--model.init_args.hidden_channels=8",
    "--model.init_args.num_layers=1",
    "--model.init_args.kernel_size=3",
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=16",
    "--data.init_args.batch_size=16",
    "--data.init_args.predict_samples=4",
    "--trainer.accelerator=cpu",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
]


@pytest.fixture
def shipped(in_tmp, monkeypatch) -> tuple[Path, Path]:
    """A tiny PixelCNN fitted for one epoch, its last checkpoint exported as the
    weights ``pixelcnn/tiny`` of a temporary pretrained folder."""
    fit = run_cli(["fit", *TINY, "--trainer.max_epochs=1"])
    last = in_tmp / fit.trainer.log_dir / "checkpoints" / "last.ckpt"
    folder = in_tmp / "pretrained"
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    return last, pretrained.export(last, "pixelcnn/tiny", folder)


def test_exported_weights_drop_the_training_state_and_load_by_name(shipped):
    last, exported = shipped
    assert pretrained.available() == ["pixelcnn/tiny"]
    assert "optimizer_states" in torch.load(last, weights_only=True)
    assert "optimizer_states" not in torch.load(exported, weights_only=True)
    assert exported.stat().st_size < last.stat().st_size
    model = pretrained.load("pixelcnn/tiny")
    assert not model.training
    images = torch.randint(0, 2, (3, 1, 12, 12))
    with torch.no_grad():
        reference = type(model).load_from_checkpoint(last).eval().log_prob(images)
        torch.testing.assert_close(model.log_prob(images), reference)
    assert len(pretrained.md5_of(exported)) == 32


def test_the_command_line_tests_and_predicts_from_pretrained_weights(shipped):
    test = run_cli(["test", *TINY, "--ckpt_path=pretrained:pixelcnn/tiny"])
    assert test.trainer.ckpt_path == str(shipped[1])
    assert (Path(test.trainer.log_dir) / "metrics.json").is_file()
    predict = run_cli(["predict", *TINY, "--ckpt_path=pretrained:pixelcnn/tiny"])
    samples = torch.load(Path(predict.trainer.log_dir) / "predict_samples.pt")
    assert samples.shape == (4, 1, 12, 12)


def test_unknown_pretrained_weights_are_one_line_listing_the_names(shipped, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["genlab", "test", *TINY, "--ckpt_path=pretrained:nope"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 1
    assert line == "genlab: error: no pretrained weights called 'nope' (available: pixelcnn/tiny)"


SHARED = REPO.parent / "shared" / "datasets"
# How each shipped file's test figure is made again: its config and data.
RETEST = {
    "vae/mnist_2d": [
        f"--config={REPO}/configs/vae/mnist_2d.yaml",
        f"--data.init_args.path={SHARED / 'mnist_10k.npz'}",
    ],
    "char_gpt/tinyshakespeare": [
        f"--config={REPO}/configs/char_gpt/tinyshakespeare.yaml",
        f"--data.init_args.path={SHARED / 'tinyshakespeare.txt'}",
    ],
    "gated_pixelcnn/mnist": [
        f"--config={REPO}/configs/gated_pixelcnn/mnist.yaml",
        f"--data.init_args.path={SHARED / 'mnist_10k.npz'}",
    ],
    "pixelcnn/mnist": [
        f"--config={REPO}/configs/pixelcnn/mnist.yaml",
        f"--data.init_args.path={SHARED / 'mnist_10k.npz'}",
    ],
}


def readme_rows() -> dict[str, list[str]]:
    """The cells of each row of the pretrained README's table, by weights name."""
    rows = {}
    for line in (pretrained.FOLDER / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_shipped_file_is_listed_with_its_md5_and_is_small():
    rows = readme_rows()
    assert sorted(rows) == pretrained.available() == sorted(RETEST)
    for name, cells in rows.items():
        path = pretrained.path_of(name)
        assert pretrained.md5_of(path) == cells[3], name
        assert path.stat().st_size <= 5 * 2**20, name


@pytest.mark.parametrize("name", sorted(RETEST))
def test_shipped_weights_load_and_sample(name):
    model = pretrained.load(name)
    generator = torch.Generator().manual_seed(0)
    if name.startswith("char_gpt"):
        assert model.sample_text(1, "ROMEO:", max_new_tokens=20, generator=generator)[0][:6] == (
            "ROMEO:"
        )
    else:
        images = model.sample(4, generator=generator)
        assert images.shape == (4, *model.image_shape)
        assert images.min() >= 0 and images.max() < model.num_levels


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RETEST))
def test_shipped_weights_reproduce_their_test_figure(name, in_tmp):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    recorded = float(readme_rows()[name][2].split()[1])
    arguments = [*RETEST[name], "--trainer.enable_progress_bar=false", "--trainer.callbacks=[]"]
    test = run_cli(["test", *arguments, f"--ckpt_path=pretrained:{name}"])
    measured = float(test.trainer.callback_metrics["test/nats_per_dim"])
    assert measured == pytest.approx(recorded, rel=0.005)
