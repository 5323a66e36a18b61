"""Export rewrite of triplet attention: rotating the pooled maps equals the paper's full rotation."""

import pytest
import torch

from netexport.zoo.attention.triplet import TripletAttention


@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 16, 9, 9), (3, 4, 1, 6)])
def test_triplet_pooled_rotation_equals_the_papers_rotation(shape):
    torch.manual_seed(0)
    module = TripletAttention(shape[1]).eval()
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(module(x), module.forward_rotated(x), rtol=1e-6, atol=1e-6)
