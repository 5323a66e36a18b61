"""CornerNet / CenterNet-Triplets decode on hand-made maps: known corners (and centers) → known boxes
and scores, computed by hand here."""

import math

import pytest
import torch

from netexport.zoo.detection.cornernet import CenterNetTriplets, CornerNet

TINY = {"num_classes": 3, "num_stacks": 1, "top_k": 2, "dims": (8, 8), "modules": (1, 1), "cnv_dim": 8}
BACKGROUND = -10.0  # heatmap logit everywhere else


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def corner_maps(size=8, br_tag=0.5):
    """tl peak (class 1, y=1, x=2), a second tl peak (class 1, y=6, x=6) below the br corner; br peak
    (class 1, y=5, x=6) and a stronger br peak of class 2 at (y=6, x=7)."""
    tl_heat = torch.full((1, 3, size, size), BACKGROUND)
    br_heat = torch.full((1, 3, size, size), BACKGROUND)
    tl_heat[0, 1, 1, 2], tl_heat[0, 1, 6, 6] = 2.0, 0.0
    br_heat[0, 1, 5, 6], br_heat[0, 2, 6, 7] = 1.0, 3.0
    tl_tag, br_tag_map = torch.zeros(1, 1, size, size), torch.zeros(1, 1, size, size)
    tl_tag[0, 0, 1, 2], br_tag_map[0, 0, 5, 6] = 0.2, br_tag
    tl_regr, br_regr = torch.zeros(1, 2, size, size), torch.zeros(1, 2, size, size)
    tl_regr[0, :, 1, 2] = torch.tensor([0.25, 0.5])
    br_regr[0, :, 5, 6] = torch.tensor([0.5, 0.75])
    return (tl_heat, br_heat, tl_tag, br_tag_map, tl_regr, br_regr)


def only_detection(out):
    scores = out["scores"][0]
    nonzero = torch.nonzero(scores > 0)
    assert nonzero.shape[0] == 1, nonzero
    pair, cls = nonzero[0].tolist()
    return out["boxes"][0, pair], scores[pair, cls].item(), cls


def test_cornernet_pairs_same_class_close_embeddings_in_order():
    model = CornerNet(**TINY).eval()
    out = model.decode(corner_maps(), (32, 32))
    assert out["boxes"].shape == (1, 4, 4) and out["scores"].shape == (1, 4, 3)
    box, score, cls = only_detection(out)
    # tl (2 + 0.25, 1 + 0.5) and br (6 + 0.5, 5 + 0.75) cells, times the stride 32 / 8 = 4
    torch.testing.assert_close(box, torch.tensor([9.0, 6.0, 26.0, 23.0]))
    assert cls == 1
    assert score == pytest.approx((sigmoid(2.0) + sigmoid(1.0)) / 2, abs=1e-6)


def test_cornernet_rejects_pairs_whose_embeddings_differ_by_more_than_half():
    model = CornerNet(**TINY).eval()
    out = model.decode(corner_maps(br_tag=0.8), (32, 32))  # |0.2 - 0.8| = 0.6 > 0.5
    assert float(out["scores"].abs().max()) == 0.0


def with_center(maps, size, cls, y, x, logit=0.5, offset=(0.0, 0.0)):
    ct_heat = torch.full((1, 3, size, size), BACKGROUND)
    ct_heat[0, cls, y, x] = logit
    ct_regr = torch.zeros(1, 2, size, size)
    ct_regr[0, :, y, x] = torch.tensor(offset)
    return (*maps, ct_heat, ct_regr)


def test_triplets_keep_a_box_with_its_center_and_average_three_scores():
    model = CenterNetTriplets(**TINY).eval()
    # box (9, 6)-(26, 23), area 289 <= 150^2: n = 3, central region x in (14.67, 20.33), y in (11.67, 17.33);
    # center cell (y=3, x=4) + offset (0, 0) is at (16, 12) pixels
    out = model.decode(with_center(corner_maps(), 8, cls=1, y=3, x=4), (32, 32))
    box, score, cls = only_detection(out)
    torch.testing.assert_close(box, torch.tensor([9.0, 6.0, 26.0, 23.0]))
    assert cls == 1
    assert score == pytest.approx((sigmoid(2.0) + sigmoid(1.0) + sigmoid(0.5)) / 3, abs=1e-6)


@pytest.mark.parametrize("cls, y, x", [(2, 3, 4), (1, 3, 3), (1, 2, 4)])
def test_triplets_drop_a_box_without_a_same_class_center_inside_its_region(cls, y, x):
    # a class-2 center; a center at x = 12 (left of 14.67); a center at y = 8 (above 11.67)
    model = CenterNetTriplets(**TINY).eval()
    out = model.decode(with_center(corner_maps(), 8, cls=cls, y=y, x=x), (32, 32))
    assert float(out["scores"].abs().max()) == 0.0


def large_box_maps(size=64):
    """One pair: tl cell (2, 2), br cell (50, 50), no offsets: box (8, 8)-(200, 200), area 36864 > 150^2."""
    tl_heat = torch.full((1, 3, size, size), BACKGROUND)
    br_heat = torch.full((1, 3, size, size), BACKGROUND)
    tl_heat[0, 0, 2, 2], br_heat[0, 0, 50, 50] = 1.0, 1.0
    zeros1, zeros2 = torch.zeros(1, 1, size, size), torch.zeros(1, 2, size, size)
    return (tl_heat, br_heat, zeros1, zeros1, zeros2, zeros2)


@pytest.mark.parametrize("center_x, kept", [(29, True), (20, False)])
def test_triplets_use_the_middle_fifth_for_large_boxes(center_x, kept):
    # n = 5: region x in ((3*8 + 2*200) / 5, (2*8 + 3*200) / 5) = (84.8, 123.2). Cell 29 → 116 px is
    # inside; cell 20 → 80 px would be inside the middle third (72, 136) but not the middle fifth.
    model = CenterNetTriplets(**{**TINY, "top_k": 1}).eval()  # one corner of each kind, one center
    out = model.decode(with_center(large_box_maps(), 64, cls=0, y=26, x=center_x, logit=0.0), (256, 256))
    if kept:
        box, score, cls = only_detection(out)
        torch.testing.assert_close(box, torch.tensor([8.0, 8.0, 200.0, 200.0]))
        assert score == pytest.approx((sigmoid(1.0) * 2 + 0.5) / 3, abs=1e-6)
    else:
        assert float(out["scores"].abs().max()) == 0.0


class _Decode(torch.nn.Module):
    def __init__(self, model, image_size):
        super().__init__()
        self.model, self.image_size = model, image_size

    def forward(self, *maps):
        out = self.model.decode(maps, self.image_size)
        return out["boxes"], out["scores"]


@pytest.mark.parametrize("cls", [CornerNet, CenterNetTriplets])
def test_decode_exports_to_onnx_and_agrees(cls, tmp_path):
    """The decode traces into an opset-17 graph (no OneHot, Mod or CumSum) that ONNX Runtime
    runs to the same boxes and scores; the triplet case also runs in the --end2end graph, which random
    weights leave without detections (recipe limitation)."""
    import onnx
    import onnxruntime as ort

    maps = with_center(corner_maps(), 8, cls=1, y=3, x=4)[: 8 if cls is CenterNetTriplets else 6]
    wrapper = _Decode(cls(**TINY).eval(), (32, 32))
    path = tmp_path / "decode.onnx"
    names = [f"map{i}" for i in range(len(maps))]
    torch.onnx.export(wrapper, maps, str(path), opset_version=17, dynamo=False, input_names=names)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"OneHot", "Mod", "CumSum"}, ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: m.numpy() for n, m in zip(names, maps)})
    with torch.no_grad():
        expected = wrapper(*maps)
    for e, g in zip(expected, got):
        torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-6, atol=1e-6)
    assert float(expected[1].max()) > 0.5  # the hand-made detection survives in both
