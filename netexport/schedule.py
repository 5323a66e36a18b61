"""Which model jobs of a verify matrix may run at the same time (`netexport verify -j auto`).

Each model's cells run as one job in a worker process. A job's peak resident memory is estimated
before it starts from the model's shapes: the zoo builds the model on PyTorch's meta device (no
weights allocated, no arithmetic) and one forward pass there gives every layer's output shape, so
the float weights and activations at the run's input size cost a fraction of a second. A job
starts while the estimates of the jobs running plus its own fit in the memory budget (at most
MEMORY_CAP, less when the machine has less available). A large job (over half the budget, or one
that cannot be estimated) runs alone, with every core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MEMORY_CAP = 20 * 2**30  # never more resident than this, whatever the machine has
AVAILABLE_SHARE = 0.9  # of MemAvailable at the start of the run; the rest is the system's

# Peak RSS of a job ~ BASE + WEIGHT_FACTOR x weights + ACTIVATION_FACTOR x activations. The base
# is a worker with torch, ONNX Runtime and TensorRT-RTX loaded after a few models. Activations are
# every layer output at once: histogram calibration makes ONNX Runtime return each quantized tensor
# of a sample, on top of its own buffers. Weights are held by the model, its FP32/FP16/INT8 graphs
# and their sessions. Fitted on the 26 lightweight and attention models at canonical size (Dec 7:
# every model's peak at most 0.98x its estimate); each -j auto report lists estimate and peak.
BASE_BYTES = 2800 * 2**20
WEIGHT_FACTOR = 6.0
ACTIVATION_FACTOR = 3.0


@dataclass(frozen=True)
class Estimate:
    """A model job's memory at the run's input size; None fields when it could not be estimated."""

    weights_bytes: int | None = None
    activation_bytes: int | None = None

    @property
    def peak_bytes(self) -> int | None:
        if self.weights_bytes is None or self.activation_bytes is None:
            return None
        return int(BASE_BYTES + WEIGHT_FACTOR * self.weights_bytes + ACTIVATION_FACTOR * self.activation_bytes)


def estimate_zoo_model(name: str, input_shapes: dict) -> Estimate:
    """The weights and summed layer outputs of zoo model `name` at `input_shapes` (NCHW per input),
    from a forward pass on the meta device; an empty Estimate when the model cannot run there."""
    import torch

    from .recipes import get_recipe
    from .zoo.registry import get_entry

    outputs = 0

    def count(_module, _inputs, result):
        nonlocal outputs
        for tensor in result if isinstance(result, (tuple, list)) else [result]:
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                outputs += tensor.numel() * tensor.element_size()

    try:
        with torch.device("meta"):
            model = get_entry(name).builder(**get_recipe(name).model_kwargs).eval()
        hooks = [m.register_forward_hook(count) for m in model.modules() if not any(m.children())]
        with torch.no_grad():
            model(*[torch.empty(tuple(shape), device="meta") for shape in input_shapes.values()])
        for hook in hooks:
            hook.remove()
    except Exception:  # an op without a meta kernel, a device-specific buffer: run it alone
        return Estimate()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return Estimate(weights, outputs)


def memory_budget() -> int:
    """Bytes the run may keep resident: MEMORY_CAP, or less when the machine has less available."""
    from .memory import machine_bytes

    machine = machine_bytes()
    return MEMORY_CAP if machine is None else min(MEMORY_CAP, int(machine[1] * AVAILABLE_SHARE))


@dataclass
class Job:
    key: str
    peak_bytes: int | None  # None: unknown, run alone


class Admission:
    """Which waiting jobs may start now, given those running.

    `budget` None means no memory limit (a fixed `-j N`): only the slot count applies."""

    def __init__(self, slots: int, budget: int | None, cores: int | None = None):
        self.slots = max(1, slots)
        self.budget = budget
        self.cores = cores or os.cpu_count() or 1
        self.running: dict[str, Job] = {}

    def alone(self, job: Job) -> bool:
        if self.budget is None:
            return False
        return job.peak_bytes is None or job.peak_bytes > self.budget // 2

    def fits(self, job: Job) -> bool:
        if not self.running:
            return True  # a job over the whole budget still runs, alone
        if len(self.running) >= self.slots or self.alone(job):
            return False
        if any(self.alone(other) for other in self.running.values()):
            return False
        if self.budget is None:
            return True
        return sum(other.peak_bytes for other in self.running.values()) + job.peak_bytes <= self.budget

    def threads(self, job: Job) -> int:
        """Intra-op threads for the job: every core when it runs alone, else a share."""
        return self.cores if self.alone(job) else max(1, self.cores // self.slots)

    def start(self, job: Job) -> None:
        self.running[job.key] = job

    def finish(self, key: str) -> None:
        self.running.pop(key, None)


def order(jobs: list[Job], admission: Admission) -> list[Job]:
    """Jobs that run alone first (unknown ones first of all), then the rest by estimated memory,
    largest first: big jobs neither wait behind the small ones nor leave a long serial tail."""
    if admission.budget is None:
        return list(jobs)
    return sorted(jobs, key=lambda j: (not admission.alone(j), j.peak_bytes is not None, -(j.peak_bytes or 0)))


def next_jobs(waiting: list[Job], admission: Admission) -> list[Job]:
    """Start every waiting job that fits, in order (a job that does not fit yet lets the ones
    behind it that do go first)."""
    started = []
    for job in list(waiting):
        if admission.fits(job):
            admission.start(job)
            waiting.remove(job)
            started.append(job)
    return started
