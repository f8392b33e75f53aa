"""The notebooks of notebooks/ run top to bottom with their small settings, in a kernel of
this environment's Python, and are stored without outputs."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 180  # a whole notebook takes 15-30 s on 2 CPU cores; this catches a hang
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def kernel_manager(folder: Path) -> AsyncKernelManager:
    """A manager of the kernel ``python3`` that runs this process's Python (the venv's),
    whatever kernels the machine has registered under that name elsewhere."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (genlab)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    """Every cell runs without an error, in a temporary working folder (runs and data
    files the notebook writes land there), with matplotlib's inline backend."""
    notebook = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(
        notebook,
        km=kernel_manager(tmp_path),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(work)}},
    )
    # the inline backend whatever the environment says; temporary files in the test's folder
    env = {**os.environ, "MPLBACKEND": INLINE_BACKEND, "TMPDIR": str(work)}
    stored = set(NOTEBOOK_DIR.iterdir())
    start = time.perf_counter()
    try:
        client.execute(cleanup_kc=True, env=env)  # shut the kernel down afterwards
    except CellExecutionError as error:
        pytest.fail(f"{path.name}: a cell failed\n{error}", pytrace=False)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    pictures = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert pictures, f"{path.name} showed no picture inline"
    assert set(NOTEBOOK_DIR.iterdir()) == stored, f"{path.name} wrote into notebooks/"


def test_kernel_is_this_python(tmp_path: Path) -> None:
    """The notebooks' kernel runs the interpreter of the tests (the venv's, where genlab
    and ipykernel are installed), not some other registered ``python3``."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(notebook, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT_S)
    client.execute(cleanup_kc=True)
    assert notebook.cells[0].outputs[0]["text"].strip() == sys.executable


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stored_clean(path: Path) -> None:
    """No outputs or execution counts, a python3 kernelspec, a valid file, and the small
    settings on: the first code cell sets ``COURSE_SIZE = False``."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for index, cell in enumerate(code_cells):
        assert cell.outputs == [], f"code cell {index} of {path.name} has outputs"
        assert cell.execution_count is None, f"code cell {index} of {path.name} has a count"
    assert "COURSE_SIZE = False" in code_cells[0].source


def test_importing_genlab_keeps_the_inline_backend(tmp_path: Path) -> None:
    """genlab draws its training pictures with Agg, but not inside a notebook, where
    that would hide every figure the notebook shows."""
    notebook = nbformat.v4.new_notebook()
    code = (
        "import genlab.callbacks, genlab.report\nimport matplotlib\nprint(matplotlib.get_backend())"
    )
    notebook.cells.append(nbformat.v4.new_code_cell(code))
    client = NotebookClient(notebook, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT_S)
    env = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}
    client.execute(cleanup_kc=True, env=env)
    assert notebook.cells[0].outputs[0]["text"].strip() == INLINE_BACKEND
