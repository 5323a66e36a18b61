import os

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
