"""End-to-end detection graphs: decode + ONNX NonMaxSuppression + fixed-size outputs, checked against
PyTorch's decode followed by torchvision's NMS (netexport.pipeline.end2end)."""

import json
import textwrap

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from netexport import cli
from netexport.errors import EXIT_USAGE
from netexport.data import synthetic_inputs
from netexport.pipeline import end2end
from netexport.pipeline.verify import _detections
from netexport.recipes import build_recipe
from netexport.sources import UserOptions, resolve
from zoo_params import per_model

DETECTOR = textwrap.dedent("""
    import torch
    from torch import nn
    from netexport.zoo.detection.boxes import anchor_boxes, decode_deltas, flatten_level

    class TinyDetector(nn.Module):
        '''Two levels (strides 8, 16), 3 anchors, 5 classes: enough boxes for NMS to have work.'''

        def __init__(self, classes=5):
            super().__init__()
            self.classes = classes
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 4, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
            self.down = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
            self.cls = nn.Conv2d(16, 3 * classes, 3, padding=1)
            self.box = nn.Conv2d(16, 3 * 4, 3, padding=1)

        def forward(self, x):
            p3 = self.stem(x)
            p4 = self.down(p3)
            return self.cls(p3), self.box(p3), self.cls(p4), self.box(p4)

        def decode(self, outputs, image_size):
            boxes, scores = [], []
            for (cls, box), stride in zip(zip(outputs[0::2], outputs[1::2]), (8, 16)):
                h, w = cls.shape[-2:]
                anchors = anchor_boxes(h, w, stride, (stride * 4,), (0.5, 1.0, 2.0))
                boxes.append(decode_deltas(anchors, flatten_level(box, 4)))
                scores.append(torch.sigmoid(flatten_level(cls, self.classes)))
            return {"boxes": torch.cat(boxes, 1), "scores": torch.cat(scores, 1)}

    def tiny_detector():
        return TinyDetector()
""")

RECIPE = textwrap.dedent("""
    inputs:
      - name: input
        shape: [1, 3, 128, 128]
        min_shape: [1, 3, 32, 32]
        test_shape: [1, 3, 128, 128]
        divisor: 16
    outputs: [cls_p3, box_p3, cls_p4, box_p4]
    end2end: {max_detections: 20, score_threshold: 0.05, iou_threshold: 0.5}
    reference: {paper: "test", implementation: "test", params: 1}
""")


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def detector(tmp_path, monkeypatch):
    (tmp_path / "tinydet.py").write_text(DETECTOR)
    (tmp_path / "tinydet.yaml").write_text(RECIPE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _user(*extra):
    return ("tinydet:tiny_detector", "--task", "detection", "--recipe", "tinydet.yaml", *extra)


def _graph_detections(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": x})))


def _torchvision_detections(model, x, settings):
    """An independent reference written here: per image, every (box, class) pair above the threshold,
    torchvision's batched NMS, best K."""
    from torchvision.ops import batched_nms

    with torch.no_grad():
        cand = model.decode(model(torch.from_numpy(x)), x.shape[-2:])
    result = []
    for b in range(x.shape[0]):
        scores = cand["scores"][b]
        box_idx, cls = (scores > settings.score_threshold).nonzero(as_tuple=True)
        keep = batched_nms(cand["boxes"][b][box_idx], scores[box_idx, cls], cls, settings.iou_threshold)
        keep = keep[: settings.max_detections]
        result.append((cand["boxes"][b][box_idx[keep]].numpy(), scores[box_idx[keep], cls[keep]].numpy(),
                       cls[keep].numpy()))
    return result


@pytest.mark.parametrize("nms,batch", [("onnx", 1), ("onnx", 3), ("loop", 3)])
def test_graph_nms_gives_torchvision_detections_at_any_batch(detector, nms, batch):
    result = _cli("onnx", *_user("--end2end", "--nms", nms, "--dynamic-batch", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True
    path = data["artifact"]
    saved = onnx.load(path)
    assert [o.name for o in saved.graph.output] == list(end2end.OUTPUTS)
    assert {"onnx": "NonMaxSuppression", "loop": "Loop"}[nms] in {n.op_type for n in saved.graph.node}
    assert json.loads({p.key: p.value for p in saved.metadata_props}["netexport.end2end"])["max_detections"] == 20

    source = resolve("tinydet:tiny_detector", UserOptions(task="detection", recipe_file="tinydet.yaml"))
    model = source.create(weights=None, input_shapes={"input": (1, 3, 128, 128)}).eval()  # the exported weights
    settings = end2end.NmsSettings(**{k: v for k, v in data["end2end"].items() if k != "nms"})
    x = synthetic_inputs({"input": (batch, 3, 128, 128)}, source.recipe.normalization, seed=1)["input"]
    got = _graph_detections(path, x)
    assert got["num_dets"].shape == (batch, 1) and got["num_dets"].dtype == np.int32
    assert got["boxes"].shape == (batch, 20, 4) and got["classes"].dtype == np.int32
    counts = got["num_dets"][:, 0]
    assert counts.max() > 0 and counts.min() < 20, "the inputs must give a realistic number of detections"
    for b, (boxes, scores, classes) in enumerate(_torchvision_detections(model, x, settings)):
        n = int(counts[b])
        assert n == len(boxes)
        np.testing.assert_allclose(got["scores"][b, :n], scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["boxes"][b, :n], boxes, rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(got["classes"][b, :n], classes)
        assert not got["boxes"][b, n:].any() and not got["scores"][b, n:].any()  # padding is zero


def test_options_override_the_recipe_and_the_threshold_stays_when_realistic(detector):
    result = _cli("onnx", *_user("--end2end", "--max-detections", "30", "--iou-threshold", "0.6",
                                 "--score-threshold", "0.45", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["end2end"]["max_detections"] == 30 and data["end2end"]["iou_threshold"] == 0.6
    used = data["end2end"]["score_threshold"]
    assert used == 0.45 or any("instead of the recipe's" in w for w in data["warnings"])


@pytest.mark.parametrize("nms", end2end.NMS_OPS)
def test_reduced_precisions_pass_the_detection_task_check(detector, nms):
    for flag in ("--fp16", "--int8"):
        result = _cli("onnx", *_user("--end2end", "--nms", nms, flag, "--json"))
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        task = data["verification"][0]["task"]
        assert data["passed"] is True and task["name"] == "detections" and task["value"] > 0.5


def test_end2end_usage_errors(detector):
    result = _cli("onnx", *_user("--max-detections", "5"))
    assert result.exit_code == EXIT_USAGE and "applies to --end2end only" in result.output
    result = _cli("onnx", *_user("--end2end", "--iou-threshold", "1.5"))
    assert result.exit_code == EXIT_USAGE and "--iou-threshold" in result.output
    result = _cli("onnx", "resnet18", "--end2end")
    assert result.exit_code == EXIT_USAGE and "classification model" in result.output
    assert not list(detector.glob("*.onnx"))


def _recipe_for_check(extras=()):
    raw = {"name": "t", "task": "detection", "inputs": [{"name": "input", "shape": [1, 3, 8, 8]}],
           "outputs": ["a"], "opset_floor": 13, "normalization": {"mean": [0], "std": [1]},
           "reference": {"paper": "p", "implementation": "i", "params": 1}, "task_check": "raw-heads",
           "tolerances": {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "fp16": {"cosine": 0.999}, "int8": {"cosine": 0.99}},
           "task_min_agreement": {"fp32": 1.0, "int8": 0.8},
           "end2end": {"max_detections": 4, "score_threshold": 0.3, "iou_threshold": 0.5, "extras": list(extras)}}
    return end2end.end2end_recipe(build_recipe(raw), build_recipe(raw).end2end)


def _dets(rows, k=4):
    """rows: (x1, y1, x2, y2, score, class) → one image's padded end-to-end outputs."""
    out = {"num_dets": np.array([[len(rows)]], np.int32), "boxes": np.zeros((1, k, 4), np.float32),
           "scores": np.zeros((1, k), np.float32), "classes": np.zeros((1, k), np.int32)}
    for i, (*box, score, cls) in enumerate(rows):
        out["boxes"][0, i], out["scores"][0, i], out["classes"][0, i] = box, score, cls
    return out


def test_detection_check_matches_by_class_and_iou_and_excuses_only_borderline_scores():
    recipe = _recipe_for_check()
    ref = _dets([(0, 0, 10, 10, 0.9, 1), (20, 20, 40, 40, 0.8, 2), (50, 50, 60, 60, 0.3000001, 3)])
    # same boxes, a tiny shift (IoU 0.96), the borderline third detection missing: passes in fp32
    got = _dets([(0, 0, 10, 10.2, 0.9, 1), (20, 20, 40, 40, 0.8, 2)])
    assert _detections(recipe, "fp32", [ref], [got]).passed
    # a wrong class is not a match
    wrong = _dets([(0, 0, 10, 10, 0.9, 4), (20, 20, 40, 40, 0.8, 2)])
    check = _detections(recipe, "fp32", [ref], [wrong])
    assert not check.passed and check.value == pytest.approx(0.5)
    # a confident detection missing fails fp32 but 2 of 2 non-borderline still... int8 needs 80%
    missing = _dets([(20, 20, 40, 40, 0.8, 2)])
    assert not _detections(recipe, "fp32", [ref], [missing]).passed
    assert not _detections(recipe, "int8", [ref], [missing]).passed
    # no reference detections: vacuous, so it fails
    assert not _detections(recipe, "fp32", [_dets([])], [_dets([])]).passed


def test_verify_adds_end_to_end_cells_and_trt_rtx_builds_the_loop_nms(detector):
    result = _cli("verify", *_user("--precision", "fp32", "--backend", "onnxruntime,tensorrt-rtx", "--json",
                                   "--no-cache"))
    assert result.exit_code == 0, result.output
    cells = {(c.get("form", "raw"), c["backend"]): c for c in json.loads(result.stdout)["cells"]}
    assert cells["raw", "onnxruntime"]["status"] == "pass"
    assert cells["raw", "tensorrt-rtx"]["status"] == "built"
    e2e = cells["end2end", "onnxruntime"]
    assert e2e["status"] == "pass" and e2e["verification"][0]["task"]["name"] == "detections"
    assert cells["end2end", "tensorrt-rtx"]["status"] == "built"


def test_tensorrt_rtx_builds_the_end_to_end_engine_with_the_loop_nms(detector):
    result = _cli("trt", *_user("--end2end", "--backend", "tensorrt-rtx", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["onnx"]["end2end"]["nms"] == "loop" and data["onnx"]["passed"] is True
    assert [o["name"] for o in data["outputs"]] == list(end2end.OUTPUTS)
    assert data["engine_bytes"] > 0


def test_only_tensorrt_rtx_gets_the_loop_nms_and_only_detectors_get_one():
    from netexport.recipes import get_recipe

    assert end2end.nms_for_backend(get_recipe("faceboxes"), "tensorrt-rtx") == "loop"
    assert end2end.nms_for_backend(get_recipe("faceboxes"), "tensorrt") == "onnx"
    assert end2end.nms_for_backend(get_recipe("faceboxes"), "onnxruntime") == "onnx"
    assert end2end.nms_for_backend(get_recipe("lpn-50"), "tensorrt-rtx") is None  # heatmap peaks, no NMS


def _zoo_detectors():
    import netexport
    from netexport.recipes import get_recipe

    return [n for n in netexport.list_models() if get_recipe(n).end2end is not None]


@pytest.mark.parametrize("name", per_model(_zoo_detectors(), full_matrix_only=True))
def test_every_zoo_detector_end_to_end_matches_its_decode_and_torchvision_nms(name, tmp_path):
    from netexport.pipeline.to_onnx import OnnxRequest, run_onnx

    result = run_onnx(OnnxRequest(name, output=tmp_path / "e2e.onnx", reduced_size=True, end2end=True))
    check = result.verifications[0].task
    assert result.passed, result.failures()
    assert check.name == "detections" and check.value == 1.0
    saved = onnx.load(str(tmp_path / "e2e.onnx"))
    assert [o.name for o in saved.graph.output][:4] == list(end2end.OUTPUTS)


@pytest.mark.parametrize("nms", end2end.NMS_OPS)
def test_fewer_candidate_pairs_than_pre_nms_top_k(detector, nms):
    """960 anchors x 5 classes = 4800 pairs, under the 5000 asked for: all of them enter NMS."""
    (detector / "tinydet.yaml").write_text(RECIPE.replace("iou_threshold: 0.5}", "iou_threshold: 0.5, pre_nms_top_k: 5000}"))
    result = _cli("onnx", *_user("--end2end", "--nms", nms, "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True


@pytest.mark.parametrize("nms", end2end.NMS_OPS)
def test_fewer_candidates_than_max_detections_still_gives_k_padded_rows(detector, nms):
    """A 32x32 input: (4x4 + 2x2 locations) x 3 anchors = 60 candidates x 5 classes = 300 pairs, fewer
    than K = 400. The outputs stay [B, K] at batch 2, the rows past num_dets zero, the rest torchvision's."""
    result = _cli("onnx", *_user("--end2end", "--nms", nms, "--batch", "2", "--input-size", "32x32",
                                 "--max-detections", "400", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["end2end"]["max_detections"] == 400

    source = resolve("tinydet:tiny_detector", UserOptions(task="detection", recipe_file="tinydet.yaml"))
    model = source.create(weights=None, input_shapes={"input": (2, 3, 32, 32)}).eval()  # the exported weights
    settings = end2end.NmsSettings(**{k: v for k, v in data["end2end"].items() if k != "nms"})
    x = synthetic_inputs({"input": (2, 3, 32, 32)}, source.recipe.normalization, seed=3)["input"]
    got = _graph_detections(data["artifact"], x)
    assert got["num_dets"].shape == (2, 1)
    assert got["boxes"].shape == (2, 400, 4) and got["scores"].shape == got["classes"].shape == (2, 400)
    for b, (boxes, scores, classes) in enumerate(_torchvision_detections(model, x, settings)):
        n = int(got["num_dets"][b, 0])
        assert 0 < n == len(boxes) <= 300
        np.testing.assert_allclose(got["scores"][b, :n], scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["boxes"][b, :n], boxes, rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(got["classes"][b, :n], classes)
        assert not got["boxes"][b, n:].any() and not got["scores"][b, n:].any() and not got["classes"][b, n:].any()
