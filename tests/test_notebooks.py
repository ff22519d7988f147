"""Every notebook in notebooks/ runs top to bottom (jupytext percent files, executed by nbclient).

The kernel is this interpreter's (the project's venv). Posterior draws are capped through
``TWIN_UQ_MAX_DRAWS`` so that each notebook is a smoke run, not a study. Notebooks that fit
more than once are long, and all are in the slow set (``own_model`` took 39 s in CI).
"""

import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Notebook -> marks. A notebook missing here fails test_every_notebook_is_covered.
COVERED = {
    "own_model.py": [pytest.mark.slow],  # 39 s in CI
    "statistician.py": [pytest.mark.slow],
    "clinician.py": [pytest.mark.slow],
    "auditor.py": [pytest.mark.slow],
    "heart_restitution.py": [pytest.mark.slow],
    "heart_circulation.py": [pytest.mark.slow],
}


def test_every_notebook_is_covered():
    found = {p.name for p in NOTEBOOKS.glob("*.py")}
    assert found, "no notebooks found"
    assert found == set(COVERED), (
        f"uncovered: {sorted(found - set(COVERED))}, missing: {sorted(set(COVERED) - found)}"
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=m, id=n.removesuffix(".py")) for n, m in COVERED.items()]
)
def test_notebook_runs(name, tmp_path, monkeypatch):
    import jupytext
    from nbclient import NotebookClient

    monkeypatch.setenv("TWIN_UQ_MAX_DRAWS", "100")
    monkeypatch.setenv("TWIN_UQ_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("TWIN_UQ_HOST_DEVICES", "2")
    # The kernelspec runs "python": make that this interpreter (the project's venv).
    monkeypatch.setenv(
        "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::DeprecationWarning")
    nb = jupytext.read(NOTEBOOKS / name)
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    assert os.listdir(tmp_path), "the notebook wrote nothing"
