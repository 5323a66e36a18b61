"""`-j auto`: memory estimates from the meta device, and which jobs may run together."""

import onnx
import pytest

from netexport import schedule
from netexport.pipeline.precision import footprint
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx

GB = 2**30


def _admission(budget_gb, slots=2, cores=2):
    return schedule.Admission(slots=slots, budget=None if budget_gb is None else budget_gb * GB, cores=cores)


def _job(name, gb):
    return schedule.Job(name, None if gb is None else int(gb * GB))


def test_jobs_start_while_their_estimates_fit_and_a_slot_is_free():
    admission = _admission(20)
    waiting = [_job("a", 6), _job("b", 9), _job("c", 4)]
    assert [j.key for j in schedule.next_jobs(waiting, admission)] == ["a", "b"]  # 15 GB, both slots taken
    admission.finish("a")
    assert [j.key for j in schedule.next_jobs(waiting, admission)] == ["c"]  # 9 + 4 <= 20


def test_a_job_that_does_not_fit_lets_a_smaller_one_behind_it_start():
    admission = _admission(20, slots=4)
    waiting = [_job("a", 7), _job("b", 7), _job("c", 7), _job("d", 2)]
    assert [j.key for j in schedule.next_jobs(waiting, admission)] == ["a", "b", "d"]  # 7 + 7 + 7 > 20
    assert [j.key for j in waiting] == ["c"]


def test_large_and_unknown_jobs_run_alone_with_every_core():
    admission = _admission(20, slots=2, cores=2)
    large, unknown, small = _job("large", 10.5), _job("unknown", None), _job("small", 1)
    assert admission.alone(large) and admission.alone(unknown) and not admission.alone(small)
    assert admission.threads(large) == 2 and admission.threads(small) == 1
    waiting = [large, small]
    assert schedule.next_jobs(waiting, admission) == [large]  # nothing joins a job running alone
    admission.finish("large")
    waiting = [unknown, small]
    assert schedule.next_jobs(waiting, admission) == [unknown]
    admission.finish("unknown")
    assert schedule.next_jobs(waiting, admission) == [small]


def test_a_job_over_the_whole_budget_still_runs_alone():
    admission = _admission(20)
    waiting = [_job("huge", 30)]
    assert [j.key for j in schedule.next_jobs(waiting, admission)] == ["huge"]


def test_a_fixed_worker_count_ignores_memory():
    admission = _admission(None, slots=2)
    waiting = [_job("a", None), _job("b", 50), _job("c", 1)]
    assert [j.key for j in schedule.next_jobs(waiting, admission)] == ["a", "b"]
    assert admission.threads(waiting[0]) == 1


def test_order_puts_jobs_that_run_alone_first_then_the_largest():
    admission = _admission(20)
    jobs = [_job("s", 1), _job("u", None), _job("m", 5), _job("l", 12)]
    assert [j.key for j in schedule.order(jobs, admission)] == ["u", "l", "m", "s"]


def test_the_budget_never_exceeds_the_cap():
    assert 0 < schedule.memory_budget() <= schedule.MEMORY_CAP


@pytest.mark.parametrize("name", ["resnet18", "enet", "vgg11"])
def test_meta_device_estimate_matches_the_exported_graph(name, tmp_path):
    """The scheduler's estimate (module outputs on the meta device) against shape inference on the
    exported, simplified graph, which folds BN into convolutions (its four vectors per channel
    become a bias) and fuses activations, so holds fewer values: the weights within 5%, the
    activations of the same order."""
    result = run_onnx(OnnxRequest(name, output=tmp_path / "m.onnx", reduced_size=True, verify=False))
    graph = footprint(onnx.load(str(result.artifact)), result.export_shapes)
    estimate = schedule.estimate_zoo_model(name, result.export_shapes)
    assert estimate.weights_bytes == pytest.approx(graph.weights_bytes, rel=0.05)
    assert graph.activation_bytes / 2 <= estimate.activation_bytes <= graph.activation_bytes * 4
    assert estimate.peak_bytes > schedule.BASE_BYTES


def test_a_model_the_meta_device_cannot_run_has_no_estimate():
    estimate = schedule.estimate_zoo_model("asff", {"input": (1, 3, 64, 64)})
    assert estimate.peak_bytes is None
