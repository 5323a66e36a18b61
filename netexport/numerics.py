"""PyTorch's thread count for the computations whose numbers reach a result.

How a CPU kernel splits its work across threads changes the order of its float additions, so at
canonical sizes a BN warm-up or a reference pass on two threads differs from one on a single
thread in the last bits, and the figures of a cell would depend on how many workers `verify` ran
(or on the machine's core count). The seeded initialisation, the PyTorch reference and the
detectors' threshold search therefore always run on TORCH_THREADS threads.
"""

from __future__ import annotations

from contextlib import contextmanager

TORCH_THREADS = 1


@contextmanager
def torch_threads(threads: int | None):
    """PyTorch's intra-op thread count set to `threads` (None: left as it is) inside the block."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fixed_threads():
    return torch_threads(TORCH_THREADS)
