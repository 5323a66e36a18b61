import json
import math
import os
from dataclasses import asdict

import pytest

# Keep each test worker to its share of the machine's cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _release_memory():
    """Large graphs (VGG: 550 MB of weights, several copies per export) must not pile up per worker."""
    yield
    import gc

    gc.collect()


@pytest.fixture(autouse=True)
def _private_verify_cache(tmp_path_factory, monkeypatch):
    """`netexport verify` caches results; tests never read or fill the user's cache."""
    monkeypatch.setenv("NETEXPORT_CACHE_DIR", str(tmp_path_factory.mktemp("verify-cache")))


@pytest.fixture(autouse=True)
def _session_init_cache(tmp_path_factory, monkeypatch):
    """Zoo models' initialised states are kept for this session only, shared by its xdist workers."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    monkeypatch.setenv("NETEXPORT_INIT_CACHE_DIR", str(root / "init-cache"))


@pytest.fixture
def record_figures(record_property):
    """Record a pipeline result's worst output in the JUnit XML (`pytest --junitxml`), so two runs of
    the suite can be compared figure by figure (scripts/compare_reports.py reads it)."""

    def record(result, precision: str) -> None:
        outputs = [asdict(o) for v in result.verifications for o in v.outputs]
        finite = [o for o in outputs if not o["problem"] and math.isfinite(o["error_ratio"])]
        if finite:
            worst = max(finite, key=lambda o: o["error_ratio"])
            record_property("netexport.precision", precision)
            record_property("netexport.worst_output", json.dumps(worst, default=float))

    return record
