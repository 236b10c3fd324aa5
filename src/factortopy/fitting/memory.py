"""Memory planning for a fit: where the features live and how many images a step takes."""
from __future__ import annotations

import torch

CPU_BATCH_SIZE = 32  # the CPU has no memory ceiling worth planning for; larger batches gain nothing


def step_bytes_per_image(n_vertices: int, n_layers: int, grid: int, dim: int, c_max: int) -> int:
    """Peak bytes one image adds to a training step (fp32 upper bound, autograd included).

    Dominant terms: the (N, D) selected features V, the product w * V and their gradients (~4 N D),
    the projected tokens and their gradient (2 L T D), the token slice itself (L T C_max, twice for
    a float copy).
    """
    tokens = n_layers * (grid * grid + 1)
    return 4 * (4 * n_vertices * dim + 2 * tokens * dim + 2 * tokens * c_max)


def fixed_step_bytes(n_vertices: int, n_layers: int, grid: int) -> int:
    """Bytes a step needs whatever the batch: the selection kernel (N, L, T), its gradient and the
    selector MLPs' activations (~10 x 128 floats per vertex)."""
    return 4 * (3 * n_vertices * n_layers * (grid * grid + 1) + 10 * 128 * n_vertices)


def auto_batch_size(n_vertices: int, n_layers: int, grid: int, dim: int, c_max: int, free_bytes: int,
                    n_train: int, budget: float = 0.5, cap: int = 512) -> int:
    """The largest power of two whose step fits in ``budget`` x ``free_bytes``, at most ``cap`` and
    at most the training set; at least 1."""
    avail = budget * free_bytes - fixed_step_bytes(n_vertices, n_layers, grid)
    per_image = step_bytes_per_image(n_vertices, n_layers, grid, dim, c_max)
    fit = max(1, int(avail // per_image)) if avail > 0 else 1
    size = 1
    while size * 2 <= min(fit, cap, max(1, n_train)):
        size *= 2
    return size


def free_device_bytes(device: str) -> int | None:
    """Free memory on a CUDA device (bytes), None on the CPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return None


def place_tokens(tokens: torch.Tensor, device: str, budget: float = 0.6) -> torch.Tensor:
    """Put the (images, L, T, C) float16 feature store where the epoch loop reads it fastest.

    On a GPU with room for them (``budget`` of free memory), the tokens move there once and every
    batch is a device-side gather. Otherwise they stay in host memory, pinned, so each batch copies
    asynchronously (``non_blocking=True``) while the previous step runs. On the CPU: unchanged.
    """
    free = free_device_bytes(device)
    if free is None:
        return tokens
    nbytes = tokens.numel() * tokens.element_size()
    if nbytes <= budget * free:
        return tokens.to(device)
    return tokens if tokens.is_pinned() else tokens.pin_memory()


#: bytes an evaluation pass may use for its intermediates on the CPU (no free-memory query there)
CPU_EVAL_BYTES = 2 << 30


def eval_budget(device: str, budget: float = 0.4) -> int:
    """Bytes a prediction pass may use: ``budget`` of the GPU's free memory, or
    :data:`CPU_EVAL_BYTES` on the CPU."""
    free = free_device_bytes(device)
    return CPU_EVAL_BYTES if free is None else int(budget * free)


def eval_chunks(n_vertices: int, n_layers: int, grid: int, dim: int, batch_size: int,
                max_bytes: int) -> tuple[int, int]:
    """(images per batch, vertices per chunk) of a no-grad prediction pass within ``max_bytes``.

    Per vertex: the kernel (L, T) and its cast copy, 8 L T bytes. Per image and vertex: the
    selected features V and V * w, 8 D bytes (the terms that took a 64-image whole-cortex pass past
    20 GiB). Images come down to 1 per batch before vertices are split.
    """
    per_vertex = 8 * n_layers * (grid * grid + 1)
    per_pair = 8 * dim
    n = max(1, n_vertices)
    images = max(1, min(batch_size, (max_bytes // n - per_vertex) // per_pair))
    vertices = max(1, min(n, max_bytes // (per_vertex + images * per_pair)))
    return int(images), int(vertices)
