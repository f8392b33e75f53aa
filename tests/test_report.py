"""``genlab report``: write-ups of tiny finished runs in HTML (self-contained), PDF
(a page or more per question) and Markdown, whose figures are the runs' own."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from test_course import (
    REPO,
    TINY_PIXELCNN,
    histogram_question,
    pixelcnn_question,
    write_manifest,
)

from genlab.cli import main, run_cli
from genlab.course.manifest import load_manifest
from genlab.course.runner import command_line_value, run_course
from genlab.report import collect_sections, write_report
from genlab.report.measures import measures_of
from genlab.report.runs import fit_events, quick_size_caveat


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder holding a tiny course (q1 PixelCNN asking for a picture it does not
    draw, q2 histogram, q3 failing at fit, q4 never run) in ``course/`` and a plain
    run that was fitted but not tested in ``plain/``."""
    folder = tmp_path_factory.mktemp("finished")
    questions = [
        pixelcnn_question("q1"),
        histogram_question("q2"),
        pixelcnn_question("q3", **{"model.init_args.hidden_chanels": 8}),
        pixelcnn_question("q4"),
    ]
    questions[0]["figures"].append("queries")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        manifest = load_manifest(write_manifest(folder, questions))
        run_course(manifest, Path("course"), only=["q1", "q2", "q3"], announce=print)
        (folder / "plain").mkdir()
        patch.chdir(folder / "plain")
        tiny = [f"--{key}={command_line_value(value)}" for key, value in TINY_PIXELCNN.items()]
        run_cli(["fit", f"--config={REPO}/configs/pixelcnn/shapes.yaml", *tiny])
    return folder


@pytest.fixture(scope="module")
def report(finished, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    return write_report([finished / "course", finished / "plain"], out)


class PageReader(HTMLParser):
    """The tables (rows of cell texts) and image sources of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def read_page(path: Path) -> PageReader:
    reader = PageReader()
    reader.feed(path.read_text(encoding="utf-8"))
    reader.close()
    return reader


def summary_by_question(path: Path) -> dict[str, dict[str, str]]:
    """The rows of the HTML summary table, by their ``question`` cell."""
    header, *rows = read_page(path).tables[0]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_html_is_one_file_embedding_every_picture(finished, report):
    reader = read_page(report["html"])
    embedded = {
        base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in reader.images
    }
    assert all(src.startswith("data:image/png;base64,") for src in reader.images)
    pictures = [
        finished / "course/q1/shapes/curves.png",
        finished / "course/q1/shapes/samples.png",
        finished / "course/q2/dataset1/curves.png",
        finished / "course/q2/dataset1/distribution.png",
        *sorted((finished / "plain").rglob("*.png")),
    ]
    pictures = [path for path in pictures if path.parent.name != "samples"]
    assert {path.read_bytes() for path in pictures} <= embedded
    assert len(reader.images) == len(pictures)
    assert 'src="' not in report["html"].read_text().replace('src="data:image/png;base64,', "")


def test_summary_figures_are_the_runs_metrics(finished, report):
    rows = summary_by_question(report["html"])
    markdown = report["md"].read_text()
    for name, folder in (("q1 shapes", "q1/shapes"), ("q2 dataset1", "q2/dataset1")):
        metrics = json.loads((finished / "course" / folder / "metrics.json").read_text())
        nats, bits = (f"{metrics['metrics'][f'test/{u}_per_dim']:.4f}" for u in ("nats", "bits"))
        assert (rows[name]["nats"], rows[name]["bits"]) == (nats, bits)
        assert f"| {nats} | {bits} |" in markdown
        last = torch.load(
            finished / "course" / folder / "checkpoints/last.ckpt", weights_only=False
        )
        parameters = sum(value.numel() for value in last["state_dict"].values())
        assert rows[name]["parameters"] == f"{parameters:,}"
        assert rows[name]["epochs"] == f"1 ({last['global_step']} steps)"
        assert rows[name]["training time"].endswith(" s")
        assert rows[name]["run folder"] == str(finished / "course" / folder)
    assert rows["q1 shapes"]["test figure"] == "NLL per dim"
    assert rows["q1 shapes"]["config"] == str(REPO / "configs/pixelcnn/shapes.yaml")


def test_runs_without_figures_are_listed_with_what_became_of_them(report):
    rows = summary_by_question(report["html"])
    assert rows["q3 shapes"]["test figure"].startswith("failed at fit: ")
    assert "hidden_chanels" in rows["q3 shapes"]["test figure"]
    assert rows["q4 shapes"]["test figure"] == "not run"
    (plain,) = [row for name, row in rows.items() if name.startswith("runs")]
    assert plain["test figure"] == "not tested" and plain["nats"] == ""
    assert plain["model"] == "PixelCNN" and plain["data"] == "Shapes (12x12)"


def test_a_missing_picture_is_named(report):
    line = "missing picture: queries.png (Probability queries on test images) is not in"
    assert line in report["html"].read_text()
    assert line in report["md"].read_text()


def test_pdf_has_a_page_or_more_per_question(report):
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", report["pdf"].read_bytes()))
    assert pages == 1 + 4 + 1  # the summary, four questions, the plain run


def test_markdown_pictures_lie_beside_it(report):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report["md"].read_text())
    assert links and all((report["md"].parent / link).is_file() for link in links)
    assert len(links) == len(read_page(report["html"]).images)


def test_a_folder_of_plain_runs_gives_a_section_per_run(finished):
    sections = collect_sections([finished / "course" / "q1", finished / "plain"])
    assert [section.runs[0].name for section in sections] == [
        "shapes",
        "runs/pixelcnn/shapes/version_0",
    ]
    assert sections[0].runs[0].measures[0].label == "NLL per dim"


def test_bad_report_input_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    for folder, message in (
        (tmp_path / "none", "no such folder"),
        (tmp_path / "empty", "no course (course.yaml) and no run folder"),
    ):
        monkeypatch.setattr(sys, "argv", ["genlab", "report", str(folder), "--out", "x"])
        with pytest.raises(SystemExit) as stop:
            main()
        error = capsys.readouterr().err
        assert stop.value.code == 1 and error.count("\n") == 1
        assert error.startswith(f"genlab: error: {folder}: {message}")


def test_an_unknown_key_in_a_course_manifest_is_an_error(finished, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(finished / "course", course)
    manifest = course / "course.yaml"
    manifest.write_text(manifest.read_text() + "colour: blue\n")
    with pytest.raises(ValueError, match=r"course.yaml: the file: unknown key 'colour'"):
        collect_sections([course])


def test_figures_are_named_for_what_they_are():
    vae = measures_of({"test/nats_per_dim": 1.0, "test/iw_nats_per_dim": 0.9}, "VAE")
    assert [m.label for m in vae] == [
        "negative ELBO per dim (upper bound on the NLL)",
        "importance-weighted NLL estimate per dim",
    ]
    assert vae[0].bits == pytest.approx(1 / 0.6931471805599453)
    (text,) = measures_of({"test/nats_per_dim": 1.2, "test/bits_per_dim": 1.7}, "CharGPT")
    assert (text.label, text.bits) == ("NLL per character", 1.7)
    (tokens,) = measures_of({"test/nats_per_token": 3.0}, "Multimodal")
    assert tokens.label == "NLL per token"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless Chromium")
def test_chromium_renders_the_html(report, tmp_path):
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={screenshot}",
            "--window-size=1200,1600",
            report["html"].resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert screenshot.read_bytes().startswith(b"\x89PNG")


def write_validation_curve(folder: Path, values: list[float]) -> None:
    """A TensorBoard event file holding ``val/nats_per_dim`` at steps 10, 20, ..."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for step, value in enumerate(values, start=1):
            writer.add_scalar("val/nats_per_dim", value, 10 * step)
            writer.add_scalar("train/loss", value, 10 * step)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [1.2, 1.0, 0.95],
            "quick size, not converged: val/nats_per_dim still fell 5.0% at its "
            "last validation (1.0000 to 0.9500)",
        ),
        (
            [1.0, 0.995],
            "quick size, not the course's: val/nats_per_dim changed -0.5% at its last validation",
        ),
        (
            [1.0, 1.02],
            "quick size, not the course's: val/nats_per_dim changed +2.0% at its last validation",
        ),
        (
            [1.0],
            "quick size, not the course's: one validation of val/nats_per_dim only, "
            "convergence unknown",
        ),
        ([], "quick size, not the course's: no validation curve to judge convergence by"),
    ],
)
def test_a_quick_run_says_whether_it_was_still_improving(tmp_path, values, expected):
    write_validation_curve(tmp_path, values)
    assert quick_size_caveat(fit_events(tmp_path).validation) == expected


def test_a_quick_course_says_so_beside_each_run(finished, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(finished / "course", course)
    status = json.loads((course / "course.json").read_text())
    (course / "course.json").write_text(json.dumps({**status, "quick": True}))
    (q1, q2, q3, q4) = [section.runs[0] for section in collect_sections([course])]
    assert q1.caveats == [quick_size_caveat(fit_events(course / "q1/shapes").validation)]
    assert q1.caveats[0].startswith("quick size")
    assert q4.caveats == [] and not q4.ran
    full = collect_sections([finished / "course"])[0].runs[0]
    assert full.caveats == [] and full.status == q1.status == "tested"
    out = write_report([course], tmp_path / "report")
    assert html.escape(q1.caveats[0]) in out["html"].read_text()
    assert q1.caveats[0] in out["md"].read_text()
    assert ", quick size)" in summary_by_question(out["html"])["q1 shapes"]["epochs"]


def test_a_strip_of_plots_gets_a_pdf_row_of_its_own(tmp_path):
    from matplotlib import image as mpimg

    from genlab.report.pdf_report import COLUMNS, picture_rows
    from genlab.report.runs import Picture

    def picture(name, width, height):
        path = tmp_path / f"{name}.png"
        mpimg.imsave(path, torch.rand(height, width).numpy())
        return ("run", Picture(name, name, path))

    squares = [picture(f"square{i}", 20, 20) for i in range(COLUMNS + 1)]
    strip = picture("strip", 90, 20)
    rows = picture_rows([squares[0], strip, *squares[1:]])
    names = [[item[1].caption for item in row] for row, _ in rows]
    assert names == [["square0"], ["strip"], [f"square{i}" for i in range(1, COLUMNS + 1)]]
    assert [strip for _, strip in rows] == [False, True, False]
