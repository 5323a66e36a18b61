"""Export rewrite `max-unpool-as-first-max-mask` (netexport/zoo/layers/max_unpool.py) computes
exactly nn.MaxPool2d(2, 2, return_indices=True) followed by nn.MaxUnpool2d(2, 2): on random inputs,
on inputs full of ties (ReLU zeros, few distinct values as after INT8 quantisation, every tie pattern
of a window), with odd sizes in floor and ceil mode; and SegNet and ENet with it equal the same
networks run with real pooling indices."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netexport.zoo.layers.max_unpool import max_unpool_from_activations
from netexport.zoo.segmentation.enet import ENet
from netexport.zoo.segmentation.segnet import SegNet

SIZES = [(8, 8), (45, 60), (23, 30), (45, 45), (7, 1), (1, 6), (2, 2), (3, 5)]


def _reference(values_from, x, ceil_mode):
    """Real max pooling with indices of `x`, then real unpooling of `values_from(pooled)`."""
    pooled, indices = nn.MaxPool2d(2, 2, ceil_mode=ceil_mode, return_indices=True)(x)
    values = values_from(pooled)
    return nn.MaxUnpool2d(2, 2)(values, indices, output_size=x.shape[-2:]), values


def _inputs(kind, shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    if kind == "relu":  # about half the window entries are tied zeros, whole windows of zeros
        return torch.relu(x - 0.3)
    if kind == "int8":  # 5 distinct values: INT8-like codes with many equal entries per window
        return torch.round(x.clamp(-2, 2))
    if kind == "constant":  # every window entirely tied
        return torch.zeros(shape)
    return x


# floor-mode pooling of a side shorter than the window is empty: those sizes run in ceil mode only
CASES = [(size, ceil_mode) for size in SIZES for ceil_mode in (False, True) if ceil_mode or min(size) >= 2]


@pytest.mark.parametrize("kind", ["random", "relu", "int8", "constant"])
@pytest.mark.parametrize("size,ceil_mode", CASES)
def test_mask_unpool_equals_max_pool_indices_and_max_unpool(size, kind, ceil_mode):
    x = _inputs(kind, (2, 3, *size), seed=size[0] * 100 + size[1])
    g = torch.Generator().manual_seed(1)
    # the pooled values themselves, and arbitrary decoder features of the pooled size (SegNet's case)
    for values_from in (lambda p: p, lambda p: torch.randn(p.shape, generator=g)):
        expected, values = _reference(values_from, x, ceil_mode)
        got = max_unpool_from_activations(values, x, ceil_mode)
        assert got.shape == x.shape
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("ceil_mode,sizes", [(False, [360, 180, 90, 45, 22, 11]), (True, [360, 180, 90, 45, 23, 12])])
def test_camvid_size_chain_restores_every_encoder_size(ceil_mode, sizes):
    """360x480 through five poolings and back: every unpooling restores the odd sizes exactly."""
    x = torch.relu(torch.randn(1, 2, 360, 480, generator=torch.Generator().manual_seed(0)))
    pre_pools, indices = [], []
    for _ in range(5):
        pre_pools.append(x)
        x, idx = nn.functional.max_pool2d(x, 2, 2, ceil_mode=ceil_mode, return_indices=True)
        indices.append(idx)
    assert [p.shape[-2] for p in pre_pools] + [x.shape[-2]] == sizes
    ours = theirs = x
    for pre_pool, idx in zip(reversed(pre_pools), reversed(indices)):
        theirs = nn.functional.max_unpool2d(theirs, idx, 2, 2, output_size=pre_pool.shape[-2:])
        ours = max_unpool_from_activations(ours, pre_pool, ceil_mode)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def _forward_with_indices(model: SegNet, x: torch.Tensor) -> torch.Tensor:
    """The original SegNet forward: pooling indices stored by the encoder, MaxUnpool2d in the decoder."""
    indices, sizes = [], []
    for encoder in model.encoders:
        x = encoder.convs(x)
        sizes.append(x.shape[-2:])
        x, idx = nn.functional.max_pool2d(x, 2, 2, ceil_mode=encoder.pool.ceil_mode, return_indices=True)
        indices.append(idx)
    for decoder, idx, size in zip(model.decoders, reversed(indices), reversed(sizes)):
        x = decoder.convs(nn.functional.max_unpool2d(x, idx, 2, 2, output_size=size))
    return x


@pytest.mark.parametrize("size", [(72, 96), (45, 61)])
def test_segnet_forward_equals_the_index_based_network(size):
    torch.manual_seed(0)
    model = SegNet().eval()
    _randomise_batch_norm(model)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _forward_with_indices(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_every_tie_pattern_of_a_window(ceil_mode):
    # all 15 non-empty patterns of which of the 4 positions hold the maximum
    patterns = torch.tensor([[(p >> i) & 1 for i in range(4)] for p in range(1, 16)], dtype=torch.float32)
    x = patterns.reshape(1, 15, 2, 2)
    values = torch.arange(15.0).reshape(1, 15, 1, 1) + 1
    expected, _ = _reference(lambda p: values, x, ceil_mode)
    torch.testing.assert_close(max_unpool_from_activations(values, x, ceil_mode), expected, rtol=0, atol=0)


def _randomise_batch_norm(model: nn.Module) -> None:
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.bias.data.uniform_(-0.5, 0.5)  # negative shifts: ReLU zeros, i.e. ties, in every stage


def _enet_forward_with_indices(model: ENet, x: torch.Tensor) -> torch.Tensor:
    """The original ENet forward: MaxPool2d indices kept by the downsampling bottlenecks, MaxUnpool2d
    in the upsampling ones."""

    def down(block, x):
        main, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        main = F.pad(main, (0, 0, 0, 0, 0, block.pad_channels))
        return block.act(main + block.branch(x)), (idx, x.shape[-2:])

    def up(block, x, pooled):
        idx, size = pooled
        return block.act(F.max_unpool2d(block.main(x), idx, 2, 2, output_size=size) + block.branch(x))

    x = model.initial(x)
    x, pooled1 = down(model.bottleneck1_0, x)
    x, pooled2 = down(model.bottleneck2_0, model.stage1(x))
    x = model.stage3(model.stage2(x))
    x = model.stage4(up(model.bottleneck4_0, x, pooled2))
    x = model.stage5(up(model.bottleneck5_0, x, pooled1))
    return model.fullconv(x)


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_enet_forward_equals_the_index_based_network(size):
    torch.manual_seed(0)
    model = ENet().eval()
    _randomise_batch_norm(model)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _enet_forward_with_indices(model, x), rtol=0, atol=0)
