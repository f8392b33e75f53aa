"""Reliability of the ``genlab`` command: exact resumption, one-line errors, a stop at
the first non-finite loss, atomic checkpoints."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genlab.callbacks.finite_loss import NonFiniteLossError
from genlab.checkpoints import AtomicCheckpointIO, CheckpointWriteError
from genlab.cli import main, run_cli
from genlab.datamodules import CaptionedMNISTDataModule
from genlab.datamodules.sampler import EpochRandomSampler
from genlab.lightning_modules import (
    AAE,
    IGPT,
    MADE,
    VQVAE,
    CharGPT,
    Diffusion,
    GatedPixelCNN,
    Multimodal,
    PixelCNN,
)
from genlab.provenance import DATA_CLASS_KEY

REPO = Path(__file__).resolve().parents[1]
QUIET = [
    "--trainer.accelerator=cpu",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
]
EXACT = [
    "--seed_everything=0",
    "--trainer.deterministic=true",
    "--trainer.log_every_n_steps=1",
    *QUIET,
]
TINY_PIXELCNN = [
    f"--config={REPO}/configs/pixelcnn/shapes.yaml",
    "--model.init_args.hidden_channels=8",
    "--model.init_args.num_layers=1",
    "--model.init_args.kernel_size=3",
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=16",
    "--data.init_args.batch_size=16",
]


@pytest.fixture(autouse=True)
def restore_deterministic_algorithms():
    """``--trainer.deterministic`` switches torch's global flag on; later tests get it back."""
    enabled = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(enabled)


@pytest.fixture
def inputs(tmp_path):
    """Data files of the families that read one: random digits and a short text."""
    rng = np.random.default_rng(0)
    contents = {}
    for split, count in (("train", 24), ("test", 8)):
        contents[split] = rng.integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)
        contents[f"{split}_labels"] = rng.integers(0, 10, count)
    np.savez(tmp_path / "digits.npz", **contents)
    (tmp_path / "lines.txt").write_text("".join(f"line {i}: a quick fox\n" for i in range(12)))
    return tmp_path


FAMILIES = {
    "pixelcnn": (PixelCNN, TINY_PIXELCNN),
    "igpt (warm-up and cosine schedule)": (
        IGPT,
        [
            f"--config={REPO}/configs/igpt/colored_shapes.yaml",
            "--model.init_args.width=16",
            "--model.init_args.num_layers=1",
            "--model.init_args.dropout=0.1",
            "--model.init_args.warmup_steps=2",
            "--data.init_args.image_size=12",
            "--data.init_args.num_train=40",
            "--data.init_args.num_test=16",
            "--data.init_args.batch_size=16",
        ],
    ),
    "char_gpt (schedule, dropout, text)": (
        CharGPT,
        [
            f"--config={REPO}/configs/char_gpt/tinyshakespeare.yaml",
            "--data.init_args.path={inputs}/lines.txt",
            "--data.init_args.context_length=8",
            "--data.init_args.batch_size=32",
            "--model.init_args.width=16",
            "--model.init_args.num_layers=1",
            "--model.init_args.dropout=0.1",
            "--model.init_args.warmup_steps=2",
            "--trainer.max_steps=-1",
            "--trainer.val_check_interval=1.0",
        ],
    ),
    "aae (manual optimisation, stochastic encoder)": (
        AAE,
        [
            f"--config={REPO}/configs/aae/mnist.yaml",
            "--data.init_args.path={inputs}/digits.npz",
            "--data.init_args.batch_size=8",
            "--model.init_args.hidden_channels=4",
            "--model.init_args.discriminator_hidden_units=8",
        ],
    ),
    "multimodal (colours and captions drawn anew for every batch)": (
        Multimodal,
        [
            f"--config={REPO}/configs/multimodal/captioned_mnist.yaml",
            "--model.init_args.vqvae_checkpoint={vqvae}",
            "--data.init_args.path={digits}",
            "--data.init_args.batch_size=8",
            "--model.init_args.width=16",
            "--model.init_args.num_heads=2",
            "--model.init_args.num_layers=1",
        ],
    ),
    "diffusion (fitted terminal statistics, noise)": (
        Diffusion,
        [
            f"--config={REPO}/configs/diffusion/square_classes.yaml",
            "--data.init_args.num_train=128",
            "--data.init_args.num_val=32",
            "--data.init_args.num_test=32",
            "--data.init_args.batch_size=32",
            "--model.init_args.hidden_units=16",
            "--model.init_args.likelihood_steps=4",
            "--trainer.check_val_every_n_epoch=1",
        ],
    ),
}


class Interrupted(Exception):
    """Stands for a crash or a kill between two epochs."""


def fit(folder: Path, args: list[str], *extra: str):
    """``genlab fit`` in ``folder`` (created), the way a user would type it."""
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        return run_cli(["fit", *args, *EXACT, *extra])


def logged_scalars(run: Path) -> dict[tuple[str, int], float]:
    """Every scalar the run logged to TensorBoard (all its event files), by (tag, step)."""
    scalars = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                scalars[tag, event.step] = event.value
    return scalars


def interrupt_after_first_epoch(model_class, monkeypatch) -> None:
    """Make ``model_class`` raise ``Interrupted`` when its second epoch starts."""

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == 1:
            raise Interrupted

    monkeypatch.setattr(model_class, "on_train_epoch_start", on_train_epoch_start)


@pytest.mark.parametrize("family", FAMILIES)
def test_an_interrupted_fit_resumed_from_last_ckpt_ends_where_an_uninterrupted_one_does(
    family, inputs, tmp_path, monkeypatch, request
):
    """Fit 2 epochs, versus fit 2 epochs cut off after the first and resumed from
    ``last.ckpt``: the same weights, optimiser and schedule states, and the same logged
    training losses and validation metrics. The first fit is told 2 epochs, as a real
    interrupted fit is: a learning-rate schedule spans the epochs the trainer is given."""
    model_class, args = FAMILIES[family]
    needs_vqvae = any("{vqvae}" in arg for arg in args)
    digits, vqvae = request.getfixturevalue("vqvae_run") if needs_vqvae else (None, None)
    args = [arg.format(inputs=inputs, digits=digits, vqvae=vqvae) for arg in args]
    straight = fit(tmp_path / "straight", args, "--trainer.max_epochs=2")

    with monkeypatch.context() as patch:
        interrupt_after_first_epoch(model_class, patch)
        with pytest.raises(Interrupted):
            fit(tmp_path / "resumed", args, "--trainer.max_epochs=2")
    run = next((tmp_path / "resumed" / "runs").glob("*/*/version_0"))
    last = run / "checkpoints" / "last.ckpt"
    resumed = fit(tmp_path / "resumed", args, "--trainer.max_epochs=2", f"--ckpt_path={last}")

    assert resumed.trainer.global_step == straight.trainer.global_step > 0
    assert_same_weights(straight.model, resumed.model)
    assert {p.name for p in last.parent.iterdir()} == {"best.ckpt", "last.ckpt"}, "no -v1 copies"
    assert_same_scalars(
        logged_scalars(tmp_path / "straight" / straight.trainer.log_dir), logged_scalars(run)
    )


def test_fitting_one_epoch_then_one_more_equals_fitting_two(tmp_path):
    """Without a schedule, a fit of 1 epoch resumed with ``max_epochs=2`` is a fit of 2."""
    straight = fit(tmp_path / "straight", TINY_PIXELCNN, "--trainer.max_epochs=2")
    fit(tmp_path / "resumed", TINY_PIXELCNN, "--trainer.max_epochs=1")
    run = tmp_path / "resumed" / "runs" / "pixelcnn" / "shapes" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    resumed = fit(
        tmp_path / "resumed", TINY_PIXELCNN, "--trainer.max_epochs=2", f"--ckpt_path={last}"
    )
    assert isinstance(resumed.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert Path(resumed.trainer.log_dir) == Path("runs/pixelcnn/shapes/version_0")
    assert not (run.parent / "version_1").exists()
    assert_same_weights(straight.model, resumed.model)
    assert {p.name for p in last.parent.iterdir()} == {"best.ckpt", "last.ckpt"}, "no -v1 copies"
    assert_same_scalars(
        logged_scalars(tmp_path / "straight" / straight.trainer.log_dir), logged_scalars(run)
    )


def assert_same_weights(first: torch.nn.Module, second: torch.nn.Module) -> None:
    """Every parameter and buffer, within 1e-6."""
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, value in first_state.items():
        torch.testing.assert_close(second_state[name], value, rtol=0, atol=1e-6, msg=name)


def assert_same_scalars(first: dict, second: dict) -> None:
    """The same tags at the same steps with the same values, within 1e-6."""
    assert any(tag.startswith("val/") for tag, _ in first), "validation metrics were logged"
    assert any(tag.startswith("train/") for tag, _ in first), "training losses were logged"
    assert second.keys() == first.keys()
    for key, value in first.items():
        assert second[key] == pytest.approx(value, rel=0, abs=1e-6), key


def test_the_shuffling_order_depends_only_on_the_seed_and_the_epoch():
    first, second = EpochRandomSampler(range(50), seed=3), EpochRandomSampler(range(50), seed=3)
    assert list(first) == list(second) and sorted(first) == list(range(50))
    first.set_epoch(1)
    assert list(first) != list(second)
    assert list(first) == list(EpochRandomSampler(range(50), seed=3, epoch=1))
    assert list(second) != list(EpochRandomSampler(range(50), seed=4))


def test_recolouring_goes_on_from_the_checkpointed_count_of_painted_batches(inputs):
    """CaptionedMNIST with ``recolor`` paints each batch from a running count; the count
    travels in the data module's checkpoint state, so a resumed fit paints as the
    uninterrupted one does."""

    def recoloring() -> CaptionedMNISTDataModule:
        datamodule = CaptionedMNISTDataModule(path=inputs / "digits.npz", seed=3, recolor=True)
        datamodule.setup("fit")
        return datamodule

    running, resumed, fresh = recoloring(), recoloring(), recoloring()
    indices = list(range(8))
    for _ in range(2):
        running.train_set.__getitems__(indices)
    resumed.load_state_dict(running.state_dict())
    expected = running.train_set.__getitems__(indices)[0]
    assert torch.equal(resumed.train_set.__getitems__(indices)[0], expected)
    assert not torch.equal(fresh.train_set.__getitems__(indices)[0], expected)


@pytest.fixture(scope="module")
def pixelcnn_checkpoint(tmp_path_factory) -> Path:
    """``last.ckpt`` of a tiny PixelCNN fitted for one epoch on binary shapes."""
    folder = tmp_path_factory.mktemp("pixelcnn")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        cli = run_cli(["fit", *TINY_PIXELCNN, *QUIET, "--trainer.max_epochs=1"])
    return folder / cli.trainer.log_dir / "checkpoints" / "last.ckpt"


def genlab_fails(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the ``genlab`` console script with ``args``, expecting an error: its exit code
    and its one line (the last on stderr, with no traceback before it)."""
    monkeypatch.setattr(sys, "argv", ["genlab", *args, *QUIET])
    with pytest.raises(SystemExit) as exit_info:
        main()
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("genlab: error: ")]
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr
    return exit_info.value.code, errors[0]


def test_a_truncated_or_random_checkpoint_is_one_line_naming_the_file(
    pixelcnn_checkpoint, tmp_path, monkeypatch, capsys
):
    truncated, random_bytes = tmp_path / "truncated.ckpt", tmp_path / "random.ckpt"
    truncated.write_bytes(pixelcnn_checkpoint.read_bytes()[:2000])
    random_bytes.write_bytes(np.random.default_rng(0).bytes(500))
    monkeypatch.chdir(tmp_path)
    for broken in (truncated, random_bytes):
        code, line = genlab_fails(
            monkeypatch, capsys, "test", *TINY_PIXELCNN, f"--ckpt_path={broken}"
        )
        assert code == 1
        assert f"--ckpt_path {broken}: not a readable checkpoint" in line


def test_a_checkpoint_of_other_sizes_is_one_line_naming_the_difference(
    pixelcnn_checkpoint, tmp_path, monkeypatch, capsys
):
    """Trained on binary shapes, given coloured ones: the data module would link 3
    channels and 4 levels to the model."""
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(
        monkeypatch,
        capsys,
        "test",
        *TINY_PIXELCNN,
        "--data.init_args.colored=true",
        f"--ckpt_path={pixelcnn_checkpoint}",
    )
    assert code == 1 and f"--ckpt_path {pixelcnn_checkpoint}: weights trained on data" in line
    assert "image_shape [1, 12, 12] there, [3, 12, 12] here; num_levels 2 there, 4 here" in line


def test_a_checkpoint_of_another_model_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    """A MADE checkpoint saved outside the command (so without its class path) given to
    a PixelCNN command."""
    made = MADE(image_shape=(1, 12, 12), hidden_units=(8,))
    trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False)
    trainer.fit(made, torch.utils.data.DataLoader(torch.randint(0, 2, (4, 1, 12, 12)), 2))
    trainer.save_checkpoint(tmp_path / "made.ckpt")
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(
        monkeypatch, capsys, "test", *TINY_PIXELCNN, f"--ckpt_path={tmp_path / 'made.ckpt'}"
    )
    assert code == 1 and f"--ckpt_path {tmp_path / 'made.ckpt'}: its model arguments" in line
    assert "is not accepted" in line


def test_an_unknown_config_key_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(
        monkeypatch, capsys, "fit", *TINY_PIXELCNN, "--model.init_args.depth=3"
    )
    assert code == 2 and "'depth' is not accepted" in line and "PixelCNN" in line
    config = tmp_path / "typo.yaml"
    config.write_text(
        (REPO / "configs/pixelcnn/shapes.yaml").read_text() + "trainr: {max_epochs: 1}\n"
    )
    code, line = genlab_fails(monkeypatch, capsys, "fit", f"--config={config}")
    assert code == 2 and "'trainr.max_epochs'" in line


@pytest.mark.parametrize(
    "config,argument,message",
    [
        (
            "pixelcnn/shapes",
            "model.init_args.num_layers=-1",
            "num_layers must be at least 1, got -1",
        ),
        ("pixelcnn/shapes", "model.init_args.learning_rate=0", "learning_rate must be a finite"),
        ("pixelcnn/shapes", "data.init_args.batch_size=0", "batch_size must be >= 1, got 0"),
        ("igpt/shapes", "model.init_args.dropout=1.5", r"dropout must be in [0, 1], got 1.5"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_it(
    config, argument, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(
        monkeypatch, capsys, "fit", f"--config={REPO}/configs/{config}.yaml", f"--{argument}"
    )
    assert code == 1 and message in line


@pytest.mark.parametrize(
    "model_class,arguments,message",
    [
        (PixelCNN, dict(hidden_channels=0), "hidden_channels must be at least 1, got 0"),
        (PixelCNN, dict(made_hidden_units=(8, -2)), "every entry of made_hidden_units"),
        (GatedPixelCNN, dict(dilations=(1, 0)), "every entry of dilations"),
        (IGPT, dict(num_heads=0), "num_heads must be at least 1, got 0"),
        (CharGPT, dict(warmup_steps=-1), "warmup_steps must be at least 0, got -1"),
        (CharGPT, dict(learning_rate=float("inf")), "learning_rate must be a finite number > 0"),
        (AAE, dict(discriminator_learning_rate=-1.0), "discriminator_learning_rate must be"),
        (VQVAE, dict(decay=1.5), r"decay must be in \[0, 1\], got 1.5"),
        (Diffusion, dict(num_hidden_layers=-1), "num_hidden_layers must be at least 0, got -1"),
        (Diffusion, dict(noise_level=-0.5), r"noise_level must be in \[0, 1\]"),
    ],
)
def test_models_reject_arguments_out_of_range_by_name(model_class, arguments, message):
    with pytest.raises(ValueError, match=message):
        model_class(**arguments)


def test_help_and_a_normal_run_go_through_main_untouched(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["genlab", "fit", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0 and "--ckpt_path" in capsys.readouterr().out
    monkeypatch.setattr(
        sys, "argv", ["genlab", "fit", *TINY_PIXELCNN, *QUIET, "--trainer.fast_dev_run=true"]
    )
    main()
    assert "genlab: error" not in capsys.readouterr().err


def test_genlab_traceback_shows_the_exception_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENLAB_TRACEBACK", "1")
    monkeypatch.setattr(
        sys, "argv", ["genlab", "fit", *TINY_PIXELCNN, "--data.init_args.batch_size=0"]
    )
    with pytest.raises(ValueError, match="batch_size"):
        main()


def test_a_nan_loss_stops_fit_at_its_step_and_leaves_the_checkpoints_as_they_were(
    tmp_path, monkeypatch
):
    """Fit 1 epoch, then resume with the loss made NaN at the second step of epoch 1 (and
    checkpoints asked for on exceptions): the fit stops there naming the step, and the
    checkpoint folder holds the same bytes as before, loadable and finite."""
    first = fit(tmp_path, TINY_PIXELCNN, "--trainer.max_epochs=1")
    checkpoints = tmp_path / first.trainer.log_dir / "checkpoints"
    before = {path.name: path.read_bytes() for path in checkpoints.iterdir()}
    bad_step = first.trainer.global_step + 1
    batch_nats = PixelCNN.batch_nats

    def nan_at_bad_step(self, batch):
        nats = batch_nats(self, batch)
        return nats * torch.nan if self.training and self.global_step == bad_step else nats

    monkeypatch.setattr(PixelCNN, "batch_nats", nan_at_bad_step)
    last = checkpoints / "last.ckpt"
    resume = [
        "--trainer.max_epochs=3",
        "--checkpoint.save_on_exception=true",
        f"--ckpt_path={last}",
    ]
    with pytest.raises(
        NonFiniteLossError, match=rf"nan at global step {bad_step} \(epoch 1, batch 1\)"
    ):
        fit(tmp_path, TINY_PIXELCNN, *resume)
    assert {path.name: path.read_bytes() for path in checkpoints.iterdir()} == before
    restored = PixelCNN.load_from_checkpoint(last)
    assert all(torch.isfinite(parameter).all() for parameter in restored.parameters())


def test_a_diverging_fit_ends_the_command_with_one_line_naming_the_step(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(
        monkeypatch, capsys, "fit", *TINY_PIXELCNN, "--model.init_args.learning_rate=1e30"
    )
    assert code == 1
    assert re.search(
        r"the training loss is (nan|inf) at global step \d+ \(epoch 0, batch \d+\)", line
    )


def test_a_checkpoint_write_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    old = path.read_bytes()

    def partial_save(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial")
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", partial_save)
        with pytest.raises(OSError, match="No space left"):
            io.save_checkpoint({"step": 2}, path)
    assert path.read_bytes() == old
    assert list(tmp_path.iterdir()) == [path], "no temporary file is left behind"
    io.save_checkpoint({"step": 2}, path)
    assert io.load_checkpoint(path)["step"] == 2


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder`` with its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def char_gpt_run(inputs, monkeypatch) -> Path:
    """``last.ckpt`` of a tiny character GPT fitted for one epoch (run folder in tmp)."""
    _, args = FAMILIES["char_gpt (schedule, dropout, text)"]
    args = [arg.format(inputs=inputs) for arg in args]
    monkeypatch.chdir(inputs)
    cli = run_cli(["fit", *args, *QUIET, "--trainer.max_epochs=1"])
    return inputs / cli.trainer.log_dir / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("command", ["fit", "test", "predict"])
def test_a_checkpoint_of_another_model_class_stops_before_its_run_changes(
    command, char_gpt_run, monkeypatch, capsys
):
    """Lightning would swap in the checkpoint's class and arguments; the command stops
    instead, naming both classes, and the CharGPT run's folder keeps every byte."""
    run = char_gpt_run.parents[1]
    before = snapshot(run)
    code, line = genlab_fails(
        monkeypatch,
        capsys,
        command,
        f"--config={REPO}/configs/pixelcnn/demo.yaml",
        f"--ckpt_path={char_gpt_run}",
    )
    assert code == 1
    assert f"--ckpt_path {char_gpt_run}: weights of CharGPT, the config asks for PixelCNN" in line
    assert snapshot(run) == before


def test_model_arguments_that_contradict_the_checkpoint_stop_the_command(
    pixelcnn_checkpoint, monkeypatch, capsys
):
    """Trained with 8 hidden channels, asked for 16: refused, naming both values; asked
    for 8 (or not asked), the test runs and scores the run's own weights."""
    monkeypatch.chdir(pixelcnn_checkpoint.parents[4])
    code, line = genlab_fails(
        monkeypatch,
        capsys,
        "test",
        *TINY_PIXELCNN,
        "--model.init_args.hidden_channels=16",
        f"--ckpt_path={pixelcnn_checkpoint}",
    )
    assert code == 1 and "hidden_channels 8 there, 16 asked" in line
    test = run_cli(["test", *TINY_PIXELCNN, *QUIET, f"--ckpt_path={pixelcnn_checkpoint}"])
    assert test.model.hparams.hidden_channels == 8
    record = json.loads((pixelcnn_checkpoint.parents[1] / "metrics.json").read_text())
    assert record["data"]["class_path"] == "genlab.datamodules.shapes.ShapesDataModule"
    assert record["data"]["init_args"]["image_size"] == 12


@pytest.fixture
def binary_digits_run(digits_file) -> Path:
    """``last.ckpt`` of a tiny PixelCNN fitted for one epoch on binarized 28x28 digits;
    the working folder is the test's tmp folder."""
    cli = run_cli(
        [
            "fit",
            f"--config={REPO}/configs/pixelcnn/mnist.yaml",
            *TINY_PIXELCNN[1:4],
            f"--data.init_args.path={digits_file}",
            "--data.init_args.batch_size=8",
            *QUIET,
            "--trainer.max_epochs=1",
        ]
    )
    return Path(cli.trainer.log_dir).resolve() / "checkpoints" / "last.ckpt"


def shapes_of_28(*extra: str) -> list[str]:
    """The tiny PixelCNN on 28x28 binary shapes: the properties of binarized MNIST."""
    return [*TINY_PIXELCNN, "--data.init_args.image_size=28", *extra]


def test_fit_from_a_run_on_other_data_is_refused_and_the_run_keeps_its_files(
    binary_digits_run, monkeypatch, capsys
):
    """Resuming an MNIST run on shapes (same image shape and levels, so the weights
    fit) would go on training it on other data in its own folder."""
    run = binary_digits_run.parents[1]
    before = snapshot(run)
    code, line = genlab_fails(
        monkeypatch, capsys, "fit", *shapes_of_28(), f"--ckpt_path={binary_digits_run}"
    )
    assert code == 1 and "fit resumes that run, which trained on other data" in line
    assert "MNISTDataModule there, ShapesDataModule here" in line
    code, line = genlab_fails(
        monkeypatch,
        capsys,
        "fit",
        *shapes_of_28("--data.init_args.image_size=20"),
        f"--ckpt_path={binary_digits_run}",
    )
    assert "image_shape [1, 28, 28] there, [1, 20, 20] here" in line
    assert snapshot(run) == before


def test_fit_from_a_run_with_other_data_arguments_is_refused_by_name(
    pixelcnn_checkpoint, monkeypatch, capsys
):
    """Also for a checkpoint saved before checkpoints recorded their data class: the
    class then comes from the run's ``fit_config.yaml``."""
    checkpoint = torch.load(pixelcnn_checkpoint, weights_only=True)
    assert checkpoint.pop(DATA_CLASS_KEY) == "genlab.datamodules.shapes.ShapesDataModule"
    old_style = pixelcnn_checkpoint.with_name("old_style.ckpt")
    torch.save(checkpoint, old_style)
    monkeypatch.chdir(pixelcnn_checkpoint.parents[4])
    for path in (pixelcnn_checkpoint, old_style):
        code, line = genlab_fails(
            monkeypatch,
            capsys,
            "fit",
            *TINY_PIXELCNN,
            "--data.init_args.num_train=60",
            "--data.init_args.batch_size=8",
            f"--ckpt_path={path}",
        )
        assert code == 1 and "other data (num_train 40 there, 60 here)" in line


def test_test_and_predict_on_other_data_write_into_a_new_run_folder(binary_digits_run):
    """Same properties, other data: allowed for scoring, and the figures and samples
    land in a fresh run folder whose ``metrics.json`` names the data."""
    run = binary_digits_run.parents[1]
    before = snapshot(run)
    test = run_cli(["test", *shapes_of_28(), *QUIET, f"--ckpt_path={binary_digits_run}"])
    predict = run_cli(["predict", *shapes_of_28(), *QUIET, f"--ckpt_path={binary_digits_run}"])
    assert snapshot(run) == before
    for cli in (test, predict):
        assert Path(cli.trainer.log_dir).resolve().parent == Path("runs/pixelcnn/shapes").resolve()
    record = json.loads((Path(test.trainer.log_dir) / "metrics.json").read_text())
    assert record["ckpt_path"] == str(binary_digits_run)
    assert record["data"]["class_path"] == "genlab.datamodules.shapes.ShapesDataModule"
    assert (Path(predict.trainer.log_dir) / "predict_samples.pt").is_file()


@pytest.mark.parametrize("command", ["validate", "test", "predict"])
def test_evaluating_without_weights_is_refused_unless_asked_for(
    command, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(monkeypatch, capsys, command, *TINY_PIXELCNN)
    assert code == 1 and f"genlab {command} needs trained weights: --ckpt_path" in line
    assert "--untrained true" in line
    assert not (tmp_path / "runs").exists()
    cli = run_cli([command, *TINY_PIXELCNN, *QUIET, "--untrained=true"])
    assert cli.trainer.state.finished


@pytest.mark.parametrize("command", ["fit", "test"])
def test_a_checkpoint_alias_is_refused_in_a_new_process(command, tmp_path, monkeypatch, capsys):
    """``last`` would mean the last checkpoint of this process, which has none: Lightning
    would warn and go on with untrained weights."""
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(monkeypatch, capsys, command, *TINY_PIXELCNN, "--ckpt_path=last")
    assert code == 1 and "--ckpt_path last: this command has no 'last' checkpoint" in line


def test_sigterm_saves_last_ckpt_exits_143_and_the_fit_resumes(tmp_path, monkeypatch, capsys):
    """SIGTERM at the third step: the step finishes, ``last.ckpt`` holds it, one line says
    where it is, the status is 143 (128 + SIGTERM), and ``--ckpt_path`` goes on to the
    end of the fit."""
    monkeypatch.chdir(tmp_path)
    on_train_batch_start = PixelCNN.on_train_batch_start

    def terminate_at_third_step(self, batch, batch_idx):
        if self.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return on_train_batch_start(self, batch, batch_idx)

    with monkeypatch.context() as patch:
        patch.setattr(PixelCNN, "on_train_batch_start", terminate_at_third_step)
        patch.setattr(
            sys,
            "argv",
            [
                "genlab",
                "fit",
                *TINY_PIXELCNN,
                *QUIET,
                "--data.init_args.batch_size=4",
                "--trainer.max_epochs=1",
            ],
        )
        with pytest.raises(SystemExit) as exit_info:
            main()
    assert exit_info.value.code == 143
    last = tmp_path / "runs/pixelcnn/shapes/version_0/checkpoints/last.ckpt"
    line = capsys.readouterr().err.splitlines()[-1]
    saved = last.relative_to(tmp_path)
    assert line == f"genlab: stopped by SIGTERM; saved {saved}, resume with --ckpt_path {saved}"
    assert torch.load(last, weights_only=True)["global_step"] == 3
    resumed = run_cli(
        [
            "fit",
            *TINY_PIXELCNN,
            *QUIET,
            "--data.init_args.batch_size=4",
            "--trainer.max_epochs=1",
            f"--ckpt_path={last}",
        ]
    )
    assert resumed.trainer.global_step == 9  # 36 training shapes in batches of 4


def test_a_resumed_fit_does_not_redraw_the_start_of_training(tmp_path):
    pictures = ["--trainer.callbacks=[{class_path: genlab.callbacks.ReceptiveField}]"]
    first = fit(tmp_path, TINY_PIXELCNN, *pictures, "--trainer.max_epochs=1")
    run = tmp_path / first.trainer.log_dir
    start, end = run / "receptive_field_start.png", run / "receptive_field_end.png"
    drawn = start.stat().st_mtime_ns, end.stat().st_mtime_ns
    last = run / "checkpoints" / "last.ckpt"
    fit(tmp_path, TINY_PIXELCNN, *pictures, "--trainer.max_epochs=2", f"--ckpt_path={last}")
    assert start.stat().st_mtime_ns == drawn[0]
    assert end.stat().st_mtime_ns > drawn[1]


def test_a_checkpoint_that_cannot_be_written_is_named_with_the_reason(tmp_path):
    """A file size limit stands in for a full disk: the write fails with the system's
    reason, the old checkpoint stays and no temporary file is left."""
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    old = path.read_bytes()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limits[1]))
        with pytest.raises(CheckpointWriteError) as error:
            io.save_checkpoint({"step": 2, "weights": torch.zeros(100_000)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert str(error.value) == f"could not write checkpoint {path}: File too large"
    assert path.read_bytes() == old
    assert list(tmp_path.iterdir()) == [path]


def test_temporary_files_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    (tmp_path / ".last.ckpt.0123abcd.tmp").write_bytes(b"PK partial")
    (tmp_path / ".best.ckpt.0123abcd.tmp").write_bytes(b"PK partial")
    io.save_checkpoint({"step": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".best.ckpt.0123abcd.tmp", "last.ckpt"]


@pytest.mark.parametrize(
    "contents,message",
    [
        ("", "the file holds no settings (empty or only comments)"),
        ("# a comment only\n", "the file holds no settings (empty or only comments)"),
        ("model:\n  class_path: [PixelCNN\n", "not valid YAML (expected ',' or ']'"),
        ("- model\n- data\n", "expected a mapping of sections"),
    ],
    ids=["empty", "comments", "syntax", "list"],
)
def test_a_config_file_that_holds_no_settings_is_named(
    contents, message, tmp_path, monkeypatch, capsys
):
    config = tmp_path / "broken.yaml"
    config.write_text(contents)
    monkeypatch.chdir(tmp_path)
    code, line = genlab_fails(monkeypatch, capsys, "fit", f"--config={config}")
    assert code == 2 and f"--config {config}: {message}" in line
