"""``genlab course``: manifests are validated, runs are fitted and tested into known
folders, done runs are skipped, stopped fits resume, failures are recorded and the
others go on; ``genlab --help`` gives genlab's own overview."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

import genlab.course.runner as runner
from genlab.cli import main
from genlab.course.manifest import ManifestError, load_manifest
from genlab.course.runner import run_arguments, run_course
from genlab.lightning_modules import PixelCNN

REPO = Path(__file__).resolve().parents[1]
# The sizes of TINY_PIXELCNN in tests/test_reliability.py, with two cheap pictures.
TINY_PIXELCNN = {
    "model.init_args.hidden_channels": 8,
    "model.init_args.num_layers": 1,
    "model.init_args.kernel_size": 3,
    "data.init_args.image_size": 12,
    "data.init_args.num_train": 40,
    "data.init_args.num_test": 16,
    "data.init_args.batch_size": 16,
    "trainer.max_epochs": 1,
    "trainer.accelerator": "cpu",
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
    "trainer.callbacks": [
        {"class_path": "genlab.callbacks.TrainingCurves"},
        {"class_path": "genlab.callbacks.SampleGrid", "init_args": {"num_samples": 4, "nrow": 2}},
    ],
}
TINY_HISTOGRAM = {
    "trainer.max_epochs": 1,
    "trainer.accelerator": "cpu",
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
}


def pixelcnn_question(question_id: str, **overrides) -> dict:
    return {
        "id": question_id,
        "title": f"Tiny PixelCNN {question_id}",
        "figures": ["training_curve", "samples"],
        "runs": {
            "shapes": {
                "config": str(REPO / "configs/pixelcnn/shapes.yaml"),
                "overrides": {**TINY_PIXELCNN, **overrides},
            }
        },
    }


def histogram_question(question_id: str) -> dict:
    return {
        "id": question_id,
        "title": "Histogram on dataset 1",
        "figures": ["training_curve", "distribution"],
        "runs": {
            "dataset1": {
                "config": str(REPO / "configs/histogram/course1.yaml"),
                "overrides": TINY_HISTOGRAM,
            }
        },
    }


def write_manifest(folder: Path, questions: list[dict], **extra) -> Path:
    """A manifest of ``questions`` in ``folder/courses/tiny.yaml``."""
    path = folder / "courses" / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({"title": "Tiny course", "questions": questions, **extra}, sort_keys=False)
    )
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working folder of its own: runs go under it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def status_of(root: Path) -> dict:
    return json.loads((root / "course.json").read_text())["runs"]


def count_fits(monkeypatch) -> list[list[str]]:
    """Record the argument list of every ``run_cli`` call the course makes."""
    calls = []
    real = runner.run_cli

    def recording(args, exit_on_error=True):
        calls.append(args)
        return real(args, exit_on_error=exit_on_error)

    monkeypatch.setattr(runner, "run_cli", recording)
    return calls


def test_course_fits_and_tests_each_run_into_its_folder_then_skips_it(workdir, monkeypatch):
    manifest = load_manifest(write_manifest(workdir, [pixelcnn_question("q1")]))
    lines = []
    assert run_course(manifest, Path("course"), announce=lines.append) == []
    run = workdir / "course" / "q1" / "shapes"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["test/nats_per_dim"] > 0
    assert metrics["ckpt_path"].endswith("q1/shapes/checkpoints/best.ckpt")
    assert {"curves.png", "samples.png", "fit_config.yaml"} <= {p.name for p in run.iterdir()}
    assert status_of(workdir / "course") == {"q1/shapes": {"state": "tested"}}
    assert load_manifest(workdir / "course" / "course.yaml").title == "Tiny course"
    assert any("question q1 (1 of 1)" in line for line in lines)

    calls = count_fits(monkeypatch)
    lines.clear()
    assert run_course(manifest, Path("course"), announce=lines.append) == []
    assert calls == []
    assert any("q1/shapes: done before (metrics.json), skipped" in line for line in lines)


def test_course_resumes_a_fit_that_stopped(workdir, monkeypatch):
    manifest = load_manifest(
        write_manifest(workdir, [pixelcnn_question("q1", **{"trainer.max_epochs": 2})])
    )

    def stop_in_second_epoch(self) -> None:
        if self.current_epoch == 1:
            raise RuntimeError("the machine went away")

    with monkeypatch.context() as patch:
        patch.setattr(PixelCNN, "on_train_epoch_start", stop_in_second_epoch, raising=False)
        assert run_course(manifest, Path("course"), announce=print) == ["q1/shapes"]
    status = status_of(workdir / "course")["q1/shapes"]
    assert status["state"] == "failed" and status["stage"] == "fit"
    assert "the machine went away" in status["error"]
    last = workdir / "course" / "q1" / "shapes" / "checkpoints" / "last.ckpt"
    assert last.is_file()

    calls = count_fits(monkeypatch)
    assert run_course(manifest, Path("course"), announce=print) == []
    assert calls[0][0] == "fit"
    assert calls[0][-1] == "--ckpt_path=course/q1/shapes/checkpoints/last.ckpt"
    assert calls[1][0] == "test"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"] == 2
    assert status_of(workdir / "course")["q1/shapes"] == {"state": "tested"}


def test_a_run_whose_test_failed_is_only_tested_again(workdir, monkeypatch):
    manifest = load_manifest(write_manifest(workdir, [pixelcnn_question("q1")]))

    def broken_test_step(self, batch, batch_idx):
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(PixelCNN, "test_step", broken_test_step)
        assert run_course(manifest, Path("course"), announce=print) == ["q1/shapes"]
    assert status_of(workdir / "course")["q1/shapes"]["stage"] == "test"

    calls = count_fits(monkeypatch)
    assert run_course(manifest, Path("course"), announce=print) == []
    assert [call[0] for call in calls] == ["test"]
    assert calls[0][-1] == "--ckpt_path=course/q1/shapes/checkpoints/best.ckpt"


def test_a_failing_run_is_recorded_and_the_others_go_on(workdir, monkeypatch, capsys):
    bad = pixelcnn_question("q1", **{"model.init_args.hidden_chanels": 8})
    path = write_manifest(workdir, [bad, histogram_question("q2")])
    monkeypatch.setattr(sys, "argv", ["genlab", "course", str(path), "--root", "course"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 1
    status = status_of(workdir / "course")
    assert status["q1/shapes"]["state"] == "failed"
    assert "hidden_chanels" in status["q1/shapes"]["error"]
    assert "\n" not in status["q1/shapes"]["error"]
    assert status["q2/dataset1"] == {"state": "tested"}
    assert "1 of the runs failed (q1/shapes)" in capsys.readouterr().out


def test_only_runs_the_questions_named(workdir, monkeypatch):
    path = write_manifest(workdir, [pixelcnn_question("q1"), histogram_question("q2")])
    calls = count_fits(monkeypatch)
    run_course(load_manifest(path), Path("course"), only=["q2"], announce=print)
    assert [call[0] for call in calls] == ["fit", "test"]
    assert not (workdir / "course" / "q1").exists()
    with pytest.raises(ValueError, match=r"--only q9: not a question of .*tiny.yaml"):
        run_course(load_manifest(path), Path("course"), only=["q9"], announce=print)


def test_run_arguments_fill_in_variables_runs_and_quick_sizes(tmp_path):
    question = pixelcnn_question("q2")
    question["runs"]["shapes"]["overrides"] = {
        "data.init_args.path": "{mnist}",
        "model.init_args.vqvae_checkpoint": "{run:q1/shapes}/checkpoints/best.ckpt",
    }
    question["quick"] = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 0.5}
    path = write_manifest(tmp_path, [pixelcnn_question("q1"), question], variables={"mnist": None})
    manifest = load_manifest(path)
    run = manifest.questions[1].runs[0]
    arguments = run_arguments(run, Path("root/q2/shapes"), manifest.variables, quick=True)
    assert arguments[:5] == [
        f"--config={REPO / 'configs/pixelcnn/shapes.yaml'}",
        "--data.init_args.path=null",
        "--model.init_args.vqvae_checkpoint=root/q1/shapes/checkpoints/best.ckpt",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=0.5",
    ]
    logger = json.loads(arguments[-1].removeprefix("--trainer.logger="))["init_args"]
    assert (logger["save_dir"], logger["name"], logger["version"]) == ("root/q2", "", "shapes")
    assert len(run_arguments(run, Path("root/q2/shapes"), manifest.variables, False)) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"titel": "x"}, r"tiny.yaml: the file: unknown key 'titel'"),
        ({"questions": [{"id": "q1", "title": "t", "runs": {}, "plots": []}]}, r"'plots'"),
        (
            {"questions": [{"id": "q1", "title": "t", "runs": {"a": {"config": "c", "x": 1}}}]},
            r"question q1: run a: unknown key 'x'",
        ),
        (
            {"questions": [{"id": "q1", "title": "t", "figures": ["sample"], "runs": {}}]},
            r"question q1: figures: unknown figure 'sample'",
        ),
        (
            {"questions": [{"id": "q1", "title": "t", "runs": {"a": {}}}]},
            r"question q1: run a: missing key 'config'",
        ),
        (
            {"questions": [{"id": "a/b", "title": "t", "runs": {"a": {"config": "c"}}}]},
            r"'a/b' is not a folder name",
        ),
        (
            {
                "questions": [
                    {"id": "q1", "title": "t", "runs": {"a": {"config": "c"}}},
                    {"id": "q1", "title": "t", "runs": {"a": {"config": "c"}}},
                ]
            },
            r"question id 'q1' is used twice",
        ),
        (
            {
                "questions": [
                    {
                        "id": "q1",
                        "title": "t",
                        "runs": {"a": {"config": "c", "overrides": {"x": "{data}"}}},
                    }
                ]
            },
            r"\{data\} is not one of the variables",
        ),
        (
            {
                "questions": [
                    {
                        "id": "q1",
                        "title": "t",
                        "runs": {"a": {"config": "c", "overrides": {"x": "{run:q2/a}"}}},
                    },
                    {"id": "q2", "title": "t", "runs": {"a": {"config": "c"}}},
                ]
            },
            r"\{run:q2/a\} is not a run of an earlier question",
        ),
    ],
)
def test_manifest_mistakes_name_the_file_and_the_key(tmp_path, change, message):
    contents = {"title": "Tiny", "questions": [histogram_question("q1")], **change}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(contents))
    with pytest.raises(ManifestError, match=message) as error:
        load_manifest(path)
    assert str(error.value).startswith(str(path))


def test_every_course_manifest_is_valid_and_names_existing_configs():
    manifests = sorted((REPO / "courses").glob("*.yaml"))
    assert {path.stem for path in manifests} >= {
        "autoregressive",
        "gated_pixelcnn",
        "latent",
        "diffusion",
    }
    for path in manifests:
        manifest = load_manifest(path)
        for question in manifest.questions:
            for run in question.runs:
                assert (REPO / run.config).is_file(), f"{path}: {run.config}"
                assert run.figures, f"{path}: question {question.id} shows no figure"


def test_a_missing_config_stops_the_course_before_anything_trains(workdir):
    question = histogram_question("q1")
    question["runs"]["dataset1"]["config"] = "configs/none.yaml"
    manifest = load_manifest(write_manifest(workdir, [question]))
    with pytest.raises(FileNotFoundError, match="question q1, run dataset1: no config file"):
        run_course(manifest, Path("course"), announce=print)
    assert not (workdir / "course").exists()


@pytest.mark.parametrize("argv", [[], ["-h"], ["--help"]])
def test_genlab_help_is_an_overview_of_its_commands(argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["genlab", *argv])
    main()
    overview = capsys.readouterr().out
    assert overview.startswith("genlab: a PyTorch Lightning lab of deep generative models")
    for command in ("fit", "validate", "test", "predict", "course", "report"):
        assert f"\n  {command} " in overview
    assert "Lightning Trainer command line tool" not in overview


def test_a_bad_course_command_line_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["genlab", "course", "--quick"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("genlab: error: ")
    assert "manifest" in error


def test_set_names_only_the_manifest_variables(workdir, monkeypatch, capsys):
    path = write_manifest(workdir, [histogram_question("q1")], variables={"mnist": "a.npz"})
    monkeypatch.setattr(sys, "argv", ["genlab", "course", str(path), "--set", "mnst=b.npz"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("genlab: error: --set mnst: not a variable of ")
    assert "(variables: mnist)" in error
    monkeypatch.setattr(sys, "argv", ["genlab", "course", str(path), "--set", "mnist"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    assert "--set mnist: expected NAME=VALUE" in capsys.readouterr().err
