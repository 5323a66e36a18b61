"""Each dense-prediction task check runs at a recipe's canonical input size at least once (the other
suite tests use the reduced test sizes): for every such task, its smallest model (fewest parameters)
is exported at its canonical size and verified in fp32 on ONNX Runtime with the task's check —
per-pixel argmax, embedding cosine, heatmap peaks, and matched detections (`--end2end`) for face
detectors."""

import pytest

import netexport
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx
from netexport.recipes import get_recipe
from zoo_params import per_model

# task → the check that must have run, and whether it is the end-to-end graph's
TASK_CHECKS = {
    "semantic-segmentation": ("pixel-argmax", False),
    "portrait-segmentation": ("pixel-argmax", False),
    "face-recognition": ("embedding-cosine", False),
    "pose": ("heatmap-peaks", False),
    "face-detection": ("detections", True),
}


def _smallest(task: str) -> str | None:
    names = netexport.list_models(task)
    return min(names, key=lambda n: get_recipe(n).reference.params) if names else None


CASES = {task: _smallest(task) for task in TASK_CHECKS}


def test_every_dense_task_has_a_model():
    assert all(CASES.values()), {task: name for task, name in CASES.items() if not name}


@pytest.mark.parametrize("name", per_model([n for n in CASES.values() if n]))
def test_task_check_at_the_canonical_size(name, tmp_path):
    recipe = get_recipe(name)
    check, end2end = TASK_CHECKS[recipe.task]
    result = run_onnx(OnnxRequest(name, output=tmp_path / f"{name}.onnx", end2end=end2end))
    assert result.passed, result.failures()
    assert result.export_shapes == {spec.name: spec.shape for spec in recipe.inputs}
    checks = [v.task for v in result.verifications if v.task is not None]
    assert checks and all(c.name == check and c.passed for c in checks), checks
