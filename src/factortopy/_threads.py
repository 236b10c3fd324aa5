"""torch's CPU thread count for the length of one call (``threads=`` of fit, predict, the estimator)."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``torch.set_num_threads(threads)``, restoring the previous count after.
    None leaves torch's setting alone (and imports nothing)."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive whole number, got {threads!r}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
