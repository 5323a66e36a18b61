"""Random-init helpers: unit-variance scaling that can keep a prior bias, and the detector heads
that use it to give untrained outputs a trained head's spread."""

import math

import pytest
import torch
from torch import nn

from netexport.zoo import create_model, scale_layers_to_unit_variance
from netexport.zoo.detection.retinanet import prior_bias


def test_unit_variance_scaling_keeps_a_prior_bias_when_asked():
    torch.manual_seed(0)
    convs = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    nn.init.normal_(convs[2].weight, std=0.01)
    nn.init.constant_(convs[2].bias, -4.6)
    x = torch.randn(4, 3, 16, 16)
    scale_layers_to_unit_variance(convs, [x], [convs[2]], keep_bias=True)
    with torch.no_grad():
        out = convs(x)
    assert torch.all(convs[2].bias == -4.6)
    assert out.std().item() == pytest.approx(1.0, rel=1e-3)


def test_unit_variance_scaling_without_keep_bias_scales_the_bias_too():
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    nn.init.constant_(linear.bias, 3.0)
    x = torch.randn(32, 16)
    with torch.no_grad():
        before = linear(x).std().item()
    scale_layers_to_unit_variance(linear, [x], [linear])
    assert torch.allclose(linear.bias, torch.full((8,), 3.0 / before))


def test_retinanet_random_head_spreads_about_the_focal_prior():
    """The paper's N(0, 0.01) head init leaves every logit within ~0.2 of the prior; the verification
    model's class logits must vary by about one unit there, and its biases stay the prior."""
    model = create_model("retinanet")
    assert model.head.cls_logits.bias.eq(prior_bias()).all()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 256, 256))
    cls_p3 = outputs[0]
    assert cls_p3.mean().item() == pytest.approx(-math.log(99), abs=0.5)
    assert 0.5 < cls_p3.std().item() < 2.0


def test_triplet_random_heads_agree_on_the_same_few_classes():
    """Untrained, the three heatmaps peak on unrelated classes and the triplet decode keeps nothing;
    the random head gives every heatmap the prior as its channel means, the first classes raised."""
    from netexport.zoo.detection.cornernet import CenterNetTriplets
    from netexport.zoo.detection.hourglass import HEAT_PRIOR_BIAS

    torch.manual_seed(0)
    model = CenterNetTriplets(num_classes=5, num_stacks=2, dims=(8, 8), modules=(1, 1), cnv_dim=8).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model.place_random_head([x])
        tl_heat, br_heat, ct_heat = (model(x)[i] for i in (0, 1, 6))
    raised = model.present_classes
    expected = torch.tensor([HEAT_PRIOR_BIAS + 1.0] * raised + [HEAT_PRIOR_BIAS] * (5 - raised))
    for heat in (tl_heat, br_heat, ct_heat):
        torch.testing.assert_close(heat.mean(dim=(0, 2, 3)), expected, atol=1e-5, rtol=0)
