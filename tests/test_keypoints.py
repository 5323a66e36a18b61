"""Pose --end2end: heatmap peak decoding, in PyTorch and in the exported graph, and its usage errors."""

import json
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from netexport import cli
from netexport.errors import EXIT_USAGE
from netexport.pipeline.keypoints import decode_heatmaps

POSE = textwrap.dedent("""
    import torch
    from torch import nn

    class TinyPose(nn.Module):
        '''Stride-4 heatmaps of 3 keypoints, sharpened so every map has one clear peak.'''

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
            self.head = nn.Conv2d(16, 3, 3, padding=1)

        def forward(self, x):
            return torch.exp(4 * torch.tanh(self.head(self.body(x))))

    def tiny_pose():
        return TinyPose()
""")

RECIPE = textwrap.dedent("""
    inputs:
      - name: input
        shape: [1, 3, 64, 48]
        min_shape: [1, 3, 32, 32]
        test_shape: [1, 3, 64, 48]
        divisor: 4
    reference: {paper: "test", implementation: "test", params: 1}
""")


def _gaussian(height, width, centre_y, centre_x, sigma=1.5):
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.exp(-((ys - centre_y) ** 2 + (xs - centre_x) ** 2) / (2 * sigma**2))


def test_decoding_moves_a_quarter_cell_towards_the_higher_neighbour_and_scales_to_pixels():
    maps = torch.stack([
        _gaussian(16, 12, 5.0, 7.0),  # centred on a cell: neighbours tie, no shift
        _gaussian(16, 12, 5.3, 6.8),  # peak cell (5, 7); higher neighbours below and to the left
        _gaussian(16, 12, 0.0, 11.0),  # corner: no neighbour on either side, no shift
    ])[None]
    points, scores = decode_heatmaps(maps, (64, 48))  # 4 input pixels per cell on both axes
    expected = torch.tensor([[[7 * 4, 5 * 4], [6.75 * 4, 5.25 * 4], [11 * 4, 0]]], dtype=torch.float32)
    torch.testing.assert_close(points, expected)
    torch.testing.assert_close(scores[0, 0], torch.tensor(1.0))
    assert 0.9 < float(scores[0, 1]) < 1.0


def test_decoding_takes_the_first_maximum_in_row_major_order_as_argmax():
    maps = torch.zeros(1, 1, 6, 6)
    maps[0, 0, 4, 1] = maps[0, 0, 2, 5] = maps[0, 0, 2, 3] = 2.0
    points, _ = decode_heatmaps(maps, (6, 6))
    assert points[0, 0].tolist() == [3.0, 2.0]  # (y=2, x=3): flat index 15, the smallest of 15, 17, 25


@pytest.fixture
def pose_model(tmp_path, monkeypatch):
    (tmp_path / "tinypose.py").write_text(POSE)
    (tmp_path / "tinypose.yaml").write_text(RECIPE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


USER = ("tinypose:tiny_pose", "--task", "pose", "--recipe", "tinypose.yaml")


@pytest.mark.parametrize("batch", [1, 3])
def test_exported_graph_decodes_its_heatmaps_as_pytorch_does(pose_model, batch):
    import onnxruntime as ort

    result = _cli("onnx", *USER, "--end2end", "--batch", batch, "--json", "-o", "pose.onnx")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] and data["end2end"]["keypoint_cell"] == [4.0, 4.0]
    assert data["verification"][0]["task"]["name"] == "keypoints"
    assert _cli("onnx", *USER, "--batch", batch, "-o", "heatmaps.onnx").exit_code == 0  # same seeded weights

    def run(path, x):
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})

    x = np.random.default_rng(0).normal(size=(batch, 3, 64, 48)).astype(np.float32)
    points, scores = run("pose.onnx", x)
    (heatmaps,) = run("heatmaps.onnx", x)
    want_points, want_scores = decode_heatmaps(torch.from_numpy(heatmaps), (64, 48))
    assert points.shape == (batch, 3, 2) and scores.shape == (batch, 3)
    np.testing.assert_allclose(points, want_points.numpy(), atol=1e-5)
    np.testing.assert_allclose(scores, want_scores.numpy(), rtol=1e-5)
    assert len({tuple(p) for p in points.reshape(-1, 2)}) > 1  # not every keypoint at one spot


def test_fp16_end2end_graph_is_valid_and_decodes_as_fp32(pose_model):
    """The decoding's index → coordinate Casts feed FP16 ops after conversion: they must cast to FP16."""
    import onnx

    fp32 = _cli("onnx", *USER, "--end2end", "--json", "-o", "pose32.onnx")
    fp16 = _cli("onnx", *USER, "--end2end", "--fp16", "--json", "-o", "pose16.onnx")
    assert fp32.exit_code == 0 and fp16.exit_code == 0, fp16.output
    assert json.loads(fp16.stdout)["passed"] is True
    proto = onnx.load("pose16.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT16 for n in proto.graph.node)


def test_keypoint_check_counts_keypoints_outside_half_a_cell():
    from netexport.pipeline.keypoints import end2end_recipe
    from netexport.pipeline.verify import compare
    from netexport.recipes import build_recipe, raw_recipe

    raw = raw_recipe("resnet18")
    raw.update(task="pose", task_check="heatmap-peaks", outputs=["heatmaps"], task_min_agreement={"int8": 0.75})
    recipe = end2end_recipe(build_recipe(raw), (4.0, 4.0))
    ref = {"keypoints": np.array([[[10.0, 20.0], [30.0, 8.0], [4.0, 4.0], [40.0, 60.0]]]),
           "scores": np.array([[0.9, 0.8, 0.7, 0.6]])}
    got = {"keypoints": ref["keypoints"] + [[[2.0, 0.0], [0.0, -2.0], [0.0, 0.0], [4.0, 0.0]]],
           "scores": ref["scores"].copy()}  # two quarter-cell refinements differ (ok), one peak moved a cell
    result = compare(recipe, "int8", "fake", [ref], [got])
    assert result.task.value == pytest.approx(0.75) and result.task.passed
    assert "3/4" in result.task.detail


def test_detection_options_are_usage_errors_for_pose(pose_model):
    result = _cli("onnx", *USER, "--end2end", "--max-detections", 5)
    assert result.exit_code == EXIT_USAGE
    assert "applies to detectors' --end2end only" in result.output and not list(pose_model.glob("*.onnx"))
