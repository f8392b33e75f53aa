"""The ``genlab`` command end to end on a tiny PixelCNN: fit, test, predict, reload."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.cli import run_cli
from genlab.lightning_modules.base import data_of
from genlab.lightning_modules.pixelcnn import PixelCNN

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--model.init_args.hidden_channels=8",
    "--model.init_args.num_layers=1",
    "--model.init_args.kernel_size=3",
    "--data.init_args.image_size=12",
    "--data.init_args.num_train=40",
    "--data.init_args.num_test=16",
    "--data.init_args.batch_size=16",
    "--data.init_args.predict_samples=6",
    "--trainer.accelerator=cpu",
]


def genlab(*args: str):
    return run_cli(list(args))


def nats_per_dim_by_hand(cli) -> float:
    """Minus the summed ``log_prob`` of the test split under the CLI's model, over the
    number of data dimensions in the split."""
    total, dims = 0.0, 0
    with torch.no_grad():
        for batch in cli.datamodule.test_dataloader():
            x = data_of(batch)
            total -= cli.model.eval().log_prob(x).double().sum().item()
            dims += x.numel()
    return total / dims


def test_the_progress_bar_can_be_turned_off(in_tmp):
    cli = genlab(
        "fit",
        f"--config={REPO}/configs/pixelcnn/shapes.yaml",
        *TINY,
        "--trainer.fast_dev_run=true",
        "--trainer.enable_progress_bar=false",
    )
    assert cli.trainer.progress_bar_callback is None


def test_fast_dev_run_fits_one_batch(in_tmp):
    cli = genlab(
        "fit", f"--config={REPO}/configs/pixelcnn/shapes.yaml", *TINY, "--trainer.fast_dev_run=true"
    )
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    assert not list(in_tmp.rglob("*.png")), "a dry run leaves no pictures behind"


def test_fit_then_test_and_predict_from_the_checkpoint(in_tmp):
    fit = genlab(
        "fit",
        f"--config={REPO}/configs/pixelcnn/shapes.yaml",
        *TINY,
        "--trainer.max_epochs=2",
    )
    run = in_tmp / "runs" / "pixelcnn" / "shapes" / "version_0"
    assert Path(fit.trainer.log_dir) == Path("runs/pixelcnn/shapes/version_0")
    for name in ["checkpoints/best.ckpt", "checkpoints/last.ckpt", "samples.png", "curves.png"]:
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    assert fit.model.image_shape == (1, 12, 12) and fit.model.num_levels == 2

    best = run / "checkpoints" / "best.ckpt"
    test = genlab(
        "test", f"--config={REPO}/configs/pixelcnn/shapes.yaml", *TINY, f"--ckpt_path={best}"
    )
    assert Path(test.trainer.log_dir).resolve() == run.resolve()
    record = json.loads((run / "metrics.json").read_text())
    nats = nats_per_dim_by_hand(test)
    assert record["metrics"]["test/nats_per_dim"] == pytest.approx(nats, rel=1e-5)
    assert record["metrics"]["test/bits_per_dim"] == pytest.approx(nats / math.log(2), rel=1e-5)

    genlab("predict", f"--config={REPO}/configs/pixelcnn/shapes.yaml", *TINY, f"--ckpt_path={best}")
    samples = torch.load(run / "predict_samples.pt")
    assert samples.shape == (6, 1, 12, 12) and samples.dtype == torch.long
    assert set(samples.unique().tolist()) <= {0, 1}
    assert (run / "predict_samples.png").is_file()

    restored = PixelCNN.load_from_checkpoint(run / "checkpoints" / "last.ckpt").eval()
    images = torch.randint(0, 2, (3, 1, 12, 12))
    fit.model.eval()
    with torch.no_grad():
        assert torch.allclose(restored.log_prob(images), fit.model.log_prob(images), atol=1e-5)


def test_a_config_naming_its_logger_still_predicts_into_the_checkpoints_run(in_tmp):
    """The demo config names its TensorBoard folder; a command from one of its
    checkpoints works in that checkpoint's run, not in a new version beside it."""
    demo = f"--config={REPO}/configs/pixelcnn/demo.yaml"
    genlab("fit", demo, *TINY, "--trainer.max_epochs=1")
    genlab("fit", demo, *TINY, "--trainer.max_epochs=1")
    first = in_tmp / "runs" / "pixelcnn" / "demo" / "version_0"
    predict = genlab("predict", demo, *TINY, f"--ckpt_path={first}/checkpoints/last.ckpt")
    assert Path(predict.trainer.log_dir).resolve() == first.resolve()
    assert (first / "predict_samples.pt").is_file()
    assert sorted(p.name for p in first.parent.iterdir()) == ["version_0", "version_1"]


@pytest.mark.parametrize(
    "config", sorted((REPO / "configs").glob("*/*.yaml")), ids=lambda p: p.stem
)
def test_every_config_parses(config, in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        genlab("fit", f"--config={config}", "--print_config")
    assert exit_info.value.code == 0
    assert "class_path" in capsys.readouterr().out


def test_a_missing_checkpoint_is_named(in_tmp):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        genlab(
            "test", f"--config={REPO}/configs/pixelcnn/shapes.yaml", *TINY, "--ckpt_path=nope.ckpt"
        )


@pytest.mark.parametrize(
    "config,overrides",
    [
        ("made/shapes", ["--data.init_args.num_train=60", "--model.init_args.hidden_units=[16]"]),
        ("histogram/course1", []),
        ("logistic_mixture/course1", []),
        ("histogram/course2", ["--data.init_args.num_samples=2000"]),
        ("logistic_mixture/warmup", ["--data.init_args.num_samples=2000"]),
        ("autoregressive2d/procedural", ["--data.init_args.num_samples=2000"]),
        ("made/procedural2d", ["--data.init_args.num_samples=2000"]),
        ("pixelcnn_made/colored_shapes", [*TINY, "--trainer.callbacks=[]"]),
        (
            "igpt/colored_shapes",
            [
                "--model.init_args.width=16",
                "--model.init_args.num_layers=1",
                "--model.init_args.warmup_steps=2",
                "--data.init_args.image_size=12",
                "--data.init_args.num_train=40",
                "--data.init_args.num_test=16",
                "--data.init_args.batch_size=16",
                "--trainer.callbacks=[]",
                "--trainer.callbacks+=genlab.callbacks.SamplingSpeed",
                "--trainer.callbacks.num_samples=2",
            ],
        ),
    ],
)
def test_each_family_fits_and_tests_from_its_checkpoint(config, overrides, in_tmp):
    """Linked data properties must also resolve when the model comes from a checkpoint."""
    args = [f"--config={REPO}/configs/{config}.yaml", *overrides, "--trainer.max_epochs=1"]
    fit = genlab("fit", *args)
    assert Path(fit.trainer.log_dir).parts[:2] == ("runs", config.split("/")[0])
    last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    test = genlab("test", *args, f"--ckpt_path={last}")
    nats = nats_per_dim_by_hand(test)
    assert test.trainer.callback_metrics["test/nats_per_dim"].item() == pytest.approx(
        nats, rel=1e-5
    )
    arguments = {k: v for k, v in fit.model.hparams.items() if not k.startswith("_")}
    assert set(arguments) <= set(inspect.signature(type(fit.model)).parameters)
    restored = type(fit.model).load_from_checkpoint(last).eval()
    x = data_of(next(iter(fit.datamodule.test_dataloader())))
    with torch.no_grad():
        assert torch.allclose(restored.log_prob(x), fit.model.eval().log_prob(x), atol=1e-5)


@pytest.mark.parametrize("config", ["mnist", "mnist_plain", "mnist_noncausal"])
def test_gated_pixelcnn_configs_fit_and_test_on_an_8_bit_array_file(config, in_tmp):
    rng = np.random.default_rng(0)
    digits = {
        split: rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)
        for split, n in [("train", 24), ("test", 8)]
    }
    np.savez(in_tmp / "digits.npz", **digits)
    args = [
        f"--config={REPO}/configs/gated_pixelcnn/{config}.yaml",
        f"--data.init_args.path={in_tmp / 'digits.npz'}",
        "--data.init_args.batch_size=8",
        "--model.init_args.hidden_channels=8",
        "--model.init_args.num_layers=3",
        "--trainer.max_epochs=1",
        "--trainer.callbacks=[]",
    ]
    fit = genlab("fit", *args)
    assert fit.model.num_levels == 256 and fit.model.image_shape == (1, 8, 8)
    last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert Path(fit.trainer.log_dir).parts[1] == fit.model.name
    test = genlab("test", *args, f"--ckpt_path={last}")
    bits = nats_per_dim_by_hand(test) / math.log(2)
    assert test.trainer.callback_metrics["test/bits_per_dim"].item() == pytest.approx(
        bits, rel=1e-5
    )


def test_a_density_file_sets_the_number_of_bins_everywhere(in_tmp):
    """A 10x10 array overrides the config's 25 bins: data, model and saved
    hyperparameters must all agree, or Lightning refuses to log them."""
    density = np.random.default_rng(0).random((10, 10))
    np.save(in_tmp / "density.npy", density)
    args = [
        f"--config={REPO}/configs/autoregressive2d/procedural.yaml",
        f"--data.init_args.path={in_tmp / 'density.npy'}",
        "--data.init_args.num_samples=2000",
        "--trainer.max_epochs=1",
        "--trainer.callbacks=[]",
    ]
    fit = genlab("fit", *args)
    assert fit.model.hparams.num_bins == fit.datamodule.hparams.num_bins == 10
    last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert genlab("test", *args, f"--ckpt_path={last}").trainer.callback_metrics
