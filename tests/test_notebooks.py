"""The notebooks (issue 6) run top to bottom in quick mode, in order, with this environment's Python."""

import os
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# Notebook 1 trains the model the others reuse, so the order matters.
ORDER = ("01_training", "02_attention", "03_distributions", "04_representations", "05_segmentation",
         "06_beyond_the_paper", "07_cae_vs_mae")


@pytest.mark.notebooks
def test_notebooks_run_in_quick_mode(tmp_path, monkeypatch):
    paths = [NOTEBOOKS / f"{name}.ipynb" for name in ORDER]
    assert sorted(NOTEBOOKS.glob("*.ipynb")) == paths, "every notebook must be listed in ORDER"
    # A private "python3" kernelspec pointing at sys.executable comes first on JUPYTER_PATH, so a
    # user-level kernelspec of the same name cannot send the notebooks to another interpreter.
    write_kernel_spec(tmp_path / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MAELENS_NOTEBOOK_MODE", "quick")
    # the notebooks' models and outputs go to a temporary folder: tests never write into the repository
    monkeypatch.setenv("MAELENS_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    if "OMP_NUM_THREADS" not in os.environ:
        # One torch thread per kernel: the tiny model's ops are small, and two threads fighting
        # for cores shared with another worker made the notebooks about 4 times slower.
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        stored = [i for i, cell in enumerate(nb.cells)
                  if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
        assert not stored, f"{path.name}: cells {stored} are committed with outputs; clear them"
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
        failure = None
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                try:
                    client.execute_cell(cell, index)
                except (CellExecutionError, CellTimeoutError) as err:
                    failure = f"{path.name}, cell {index} failed:\n{err}"
                    break
        if failure:
            pytest.fail(failure, pytrace=False)
