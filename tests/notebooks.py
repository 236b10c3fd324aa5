"""Running notebooks the way a user does: a plain Jupyter kernel (ipykernel through nbclient), no
magic, no MPLBACKEND (ipykernel then picks matplotlib's inline backend, as in Jupyter)."""
from __future__ import annotations

import os


def execute(nb, cwd: str, env: dict | None = None, timeout: int = 600):
    """Execute notebook ``nb`` (nbformat) in a fresh python3 kernel started in ``cwd`` with the
    test process's environment, less MPLBACKEND, plus ``env``. Returns the executed notebook;
    a cell error raises nbclient's CellExecutionError with the traceback."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    kernel_env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    kernel_env.update(env or {})
    km = KernelManager(kernel_name="python3")
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": cwd}})
    # nbclient starts the kernel itself; the environment and folder travel through its kwargs
    client.execute(env=kernel_env, cwd=cwd)
    return nb


def outputs(nb):
    """(cell index, output) of every output of every code cell."""
    return [(i, out) for i, cell in enumerate(nb.cells) if cell.cell_type == "code" for out in cell.get("outputs", [])]


def images(nb, cell: int | None = None) -> list:
    """The image/png outputs (of one cell, or all)."""
    return [o for i, o in outputs(nb) if (cell is None or i == cell) and "image/png" in o.get("data", {})]


def stderr_text(nb) -> str:
    return "".join(o.get("text", "") for _, o in outputs(nb) if o.get("output_type") == "stream"
                   and o.get("name") == "stderr")
