"""Inception v2 (BN-Inception), v3, v4 and Inception-ResNet-v2.

- inception-v2: BN-Inception of Ioffe & Szegedy, "Batch Normalization", ICML 2015 (Figure 5): GoogLeNet
  with every 5x5 replaced by two 3x3, BN after every conv, stride-2 modules 3c/4e. Channel plan and the
  biased convs of the released Caffe model, as ported in Cadene's pretrainedmodels `bninception`
  (so 4e passes 608 + 192 + 256 = 1056 channels on to 5a).
- inception-v3: Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016; module and
  parameter names follow torchvision's Inception3, so its checkpoints load unchanged.
- inception-v4 / inception-resnet-v2: Szegedy et al., "Inception-v4, Inception-ResNet and the Impact
  of Residual Connections", AAAI 2017, as released in TF-slim (module names as Cadene/timm ports).

All classifiers use global average pooling, which equals the papers' fixed 7x7/8x8 pools at the
canonical sizes and keeps reduced sizes exportable. Only inception-v3 has an auxiliary head (train mode).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model


class BasicConv2d(nn.Module):
    """Conv → BN → ReLU (attribute names conv/bn as in torchvision and Cadene); padding 0 = 'valid'."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size, stride=1, padding=0, bias: bool = False, eps: float = 1e-3
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias)
        self.bn = nn.BatchNorm2d(out_ch, eps=eps)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _conv1x7(in_ch: int, out_ch: int) -> BasicConv2d:
    return BasicConv2d(in_ch, out_ch, (1, 7), padding=(0, 3))


def _conv7x1(in_ch: int, out_ch: int) -> BasicConv2d:
    return BasicConv2d(in_ch, out_ch, (7, 1), padding=(3, 0))


def _conv1x3(in_ch: int, out_ch: int) -> BasicConv2d:
    return BasicConv2d(in_ch, out_ch, (1, 3), padding=(0, 1))


def _conv3x1(in_ch: int, out_ch: int) -> BasicConv2d:
    return BasicConv2d(in_ch, out_ch, (3, 1), padding=(1, 0))


# ---------------------------------------------------------------------------------------------
# Inception-v2 (BN-Inception)
# ---------------------------------------------------------------------------------------------


class BNInceptionBlock(nn.Module):
    """Figure 5 columns: 1x1 | 1x1→3x3 | 1x1→3x3→3x3 | pool(→1x1 proj).

    With stride 2 (3c, 4e) there is no 1x1 branch, the last 3x3 of both towers strides and the
    3x3/2 max pool passes its input through unprojected.
    """

    def __init__(
        self, in_ch, ch1x1, ch3x3red, ch3x3, dbl_red, dbl, pool: str, pool_proj: int, stride: int = 1
    ):
        super().__init__()

        def conv(i, o, k, s=1):  # the Caffe model's convs carry biases; BN eps 1e-5
            return BasicConv2d(i, o, k, s, padding=k // 2, bias=True, eps=1e-5)

        self.branch1x1 = conv(in_ch, ch1x1, 1) if ch1x1 else None
        self.branch3x3 = nn.Sequential(conv(in_ch, ch3x3red, 1), conv(ch3x3red, ch3x3, 3, stride))
        self.branch3x3dbl = nn.Sequential(
            conv(in_ch, dbl_red, 1), conv(dbl_red, dbl, 3), conv(dbl, dbl, 3, stride)
        )
        if stride == 2:
            self.branch_pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        else:
            pool_layer = nn.AvgPool2d(3, 1, 1) if pool == "avg" else nn.MaxPool2d(3, 1, 1)
            self.branch_pool = nn.Sequential(pool_layer, conv(in_ch, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + dbl + (pool_proj if stride == 1 else in_ch)

    def forward(self, x):
        outs = [] if self.branch1x1 is None else [self.branch1x1(x)]
        outs += [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(outs, 1)


class BNInception(nn.Module):
    # in_ch is implied; (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, proj, stride)
    CFG = {
        "inception_3a": (64, 64, 64, 64, 96, "avg", 32, 1),
        "inception_3b": (64, 64, 96, 64, 96, "avg", 64, 1),
        "inception_3c": (0, 128, 160, 64, 96, "max", 0, 2),
        "inception_4a": (224, 64, 96, 96, 128, "avg", 128, 1),
        "inception_4b": (192, 96, 128, 96, 128, "avg", 128, 1),
        "inception_4c": (160, 128, 160, 128, 160, "avg", 128, 1),
        "inception_4d": (96, 128, 192, 160, 192, "avg", 128, 1),
        "inception_4e": (0, 128, 192, 192, 256, "max", 0, 2),
        "inception_5a": (352, 192, 320, 160, 224, "avg", 128, 1),
        "inception_5b": (352, 192, 320, 192, 224, "max", 128, 1),
    }

    def __init__(self, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            BasicConv2d(in_chans, 64, 7, 2, 3, bias=True, eps=1e-5),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            BasicConv2d(64, 64, 1, bias=True, eps=1e-5),
            BasicConv2d(64, 192, 3, 1, 1, bias=True, eps=1e-5),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        blocks, ch = [], 192
        for name, cfg in self.CFG.items():
            block = BNInceptionBlock(ch, *cfg)
            blocks.append((name, block))
            ch = block.out_channels
        self.blocks = nn.Sequential(OrderedDict(blocks))
        self.num_features = ch  # 1024
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.last_linear = nn.Linear(ch, num_classes)
        # The paper gives no initialiser: He normal for the ReLU convs, zero biases, BN scale 1.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.last_linear.weight)
        nn.init.zeros_(self.last_linear.bias)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.last_linear(torch.flatten(self.global_pool(x), 1))


# ---------------------------------------------------------------------------------------------
# Inception-v3 (torchvision layout)
# ---------------------------------------------------------------------------------------------


class InceptionA(nn.Module):
    """35x35 module (Figure 5 of the v3 paper; the 5x5 tower kept as in the released model)."""

    def __init__(self, in_ch: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35→17 grid reduction (Figure 10)."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    """17x17 module with factorised 7x7 convolutions (Figure 6)."""

    def __init__(self, in_ch: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = _conv1x7(c7, c7)
        self.branch7x7_3 = _conv7x1(c7, 192)
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = _conv7x1(c7, c7)
        self.branch7x7dbl_3 = _conv1x7(c7, c7)
        self.branch7x7dbl_4 = _conv7x1(c7, c7)
        self.branch7x7dbl_5 = _conv1x7(c7, 192)
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """17→8 grid reduction."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = _conv1x7(192, 192)
        self.branch7x7x3_3 = _conv7x1(192, 192)
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """8x8 module with expanded filter banks (Figure 7)."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = _conv1x3(384, 384)
        self.branch3x3_2b = _conv3x1(384, 384)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _conv1x3(384, 384)
        self.branch3x3dbl_3b = _conv3x1(384, 384)
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    """Auxiliary head on the 17x17 grid: 5x5/3 avg pool → 1x1 conv 128 → 5x5 conv 768 → fc."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.conv0 = BasicConv2d(in_ch, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        if min(x.shape[-2:]) >= 17:  # 299 input (or larger): the paper's pooling
            x = F.avg_pool2d(x, 5, 3)
        else:  # reduced inputs (train mode only): give the 5x5 conv the 5x5 map it expects
            x = F.adaptive_avg_pool2d(x, 5)
        x = F.adaptive_avg_pool2d(self.conv1(self.conv0(x)), 1)
        return self.fc(torch.flatten(x, 1))


class InceptionV3(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(in_chans, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, 2)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(2048, num_classes)
        self.num_features = 2048
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init_weights=True (after the TF release): truncated normal std 0.1, with
        # 0.01 for the aux 5x5 conv and 0.001 for the aux classifier; BN 1/0.
        stddev = {}
        if self.AuxLogits is not None:
            stddev = {self.AuxLogits.conv1.conv: 0.01, self.AuxLogits.fc: 0.001}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=stddev.get(m, 0.1), a=-2, b=2)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))
        x = self.maxpool2(x)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (x, aux) if aux is not None else x


# ---------------------------------------------------------------------------------------------
# Inception-v4 (Figures 3-9 of the v4 paper)
# ---------------------------------------------------------------------------------------------


class _Concat(nn.Module):
    """Runs the named branches on the same input and concatenates them along channels."""

    branches: tuple[str, ...] = ()

    def forward(self, x):
        return torch.cat([getattr(self, name)(x) for name in self.branches], 1)


class Mixed3a(_Concat):
    branches = ("maxpool", "conv")

    def __init__(self):
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, 2)
        self.conv = BasicConv2d(64, 96, 3, stride=2)


class Mixed4a(_Concat):
    branches = ("branch0", "branch1")

    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(160, 64, 1), BasicConv2d(64, 96, 3))
        self.branch1 = nn.Sequential(
            BasicConv2d(160, 64, 1), _conv1x7(64, 64), _conv7x1(64, 64), BasicConv2d(64, 96, 3)
        )


class Mixed5a(_Concat):
    branches = ("conv", "maxpool")

    def __init__(self):
        super().__init__()
        self.conv = BasicConv2d(192, 192, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2)


def _avg_pool_proj(in_ch: int, out_ch: int) -> nn.Sequential:
    # TF "SAME" average pooling: padded positions are not counted
    return nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), BasicConv2d(in_ch, out_ch, 1))


class InceptionV4A(_Concat):
    branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(384, 96, 1)
        self.branch1 = nn.Sequential(BasicConv2d(384, 64, 1), BasicConv2d(64, 96, 3, padding=1))
        self.branch2 = nn.Sequential(
            BasicConv2d(384, 64, 1), BasicConv2d(64, 96, 3, padding=1), BasicConv2d(96, 96, 3, padding=1)
        )
        self.branch3 = _avg_pool_proj(384, 96)


class ReductionA(_Concat):
    """35→17 reduction with (k, l, m, n) = (192, 224, 256, 384) (Table 1 of the v4 paper)."""

    branches = ("branch0", "branch1", "branch2")

    def __init__(self, in_ch=384, k=192, l=224, m=256, n=384):  # noqa: E741 (the paper's names)
        super().__init__()
        self.branch0 = BasicConv2d(in_ch, n, 3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_ch, k, 1), BasicConv2d(k, l, 3, padding=1), BasicConv2d(l, m, 3, stride=2)
        )
        self.branch2 = nn.MaxPool2d(3, 2)


class InceptionV4B(_Concat):
    branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(1024, 384, 1)
        self.branch1 = nn.Sequential(BasicConv2d(1024, 192, 1), _conv1x7(192, 224), _conv7x1(224, 256))
        self.branch2 = nn.Sequential(
            BasicConv2d(1024, 192, 1),
            _conv7x1(192, 192),
            _conv1x7(192, 224),
            _conv7x1(224, 224),
            _conv1x7(224, 256),
        )
        self.branch3 = _avg_pool_proj(1024, 128)


class ReductionB(_Concat):
    branches = ("branch0", "branch1", "branch2")

    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(1024, 192, 1), BasicConv2d(192, 192, 3, stride=2))
        self.branch1 = nn.Sequential(
            BasicConv2d(1024, 256, 1),
            _conv1x7(256, 256),
            _conv7x1(256, 320),
            BasicConv2d(320, 320, 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, 2)


class InceptionV4C(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(1536, 256, 1)
        self.branch1_0 = BasicConv2d(1536, 384, 1)
        self.branch1_1a = _conv1x3(384, 256)
        self.branch1_1b = _conv3x1(384, 256)
        # the released model (TF-slim) factorises 3x1 then 1x3 here; the paper's figure shows 1x3, 3x1
        self.branch2_0 = BasicConv2d(1536, 384, 1)
        self.branch2_1 = _conv3x1(384, 448)
        self.branch2_2 = _conv1x3(448, 512)
        self.branch2_3a = _conv1x3(512, 256)
        self.branch2_3b = _conv3x1(512, 256)
        self.branch3 = _avg_pool_proj(1536, 256)

    def forward(self, x):
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(x1),
                self.branch1_1b(x1),
                self.branch2_3a(x2),
                self.branch2_3b(x2),
                self.branch3(x),
            ],
            1,
        )


def _init_tf_slim(model: nn.Module, conv_init: str) -> None:
    """TF-slim initialisers: He (variance scaling, fan-in) or Xavier for convs; Xavier for the
    classifier; zero biases; BN scale 1, shift 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if conv_init == "he":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class InceptionV4(nn.Module):
    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2
    ):
        super().__init__()
        self.features = nn.Sequential(
            BasicConv2d(in_chans, 32, 3, stride=2),
            BasicConv2d(32, 32, 3),
            BasicConv2d(32, 64, 3, padding=1),
            Mixed3a(),
            Mixed4a(),
            Mixed5a(),
            *[InceptionV4A() for _ in range(4)],
            ReductionA(),
            *[InceptionV4B() for _ in range(7)],
            ReductionB(),
            *[InceptionV4C() for _ in range(3)],
        )
        self.num_features = 1536
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)  # keep probability 0.8 in the paper
        self.last_linear = nn.Linear(1536, num_classes)
        _init_tf_slim(self, "he")

    def forward(self, x):
        x = torch.flatten(self.global_pool(self.features(x)), 1)
        return self.last_linear(self.dropout(x))


# ---------------------------------------------------------------------------------------------
# Inception-ResNet-v2 (Figures 9-18 of the v4 paper, with TF-slim's released stem)
# ---------------------------------------------------------------------------------------------


class Mixed5b(_Concat):
    branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, 1)
        self.branch1 = nn.Sequential(BasicConv2d(192, 48, 1), BasicConv2d(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(
            BasicConv2d(192, 64, 1), BasicConv2d(64, 96, 3, padding=1), BasicConv2d(96, 96, 3, padding=1)
        )
        self.branch3 = _avg_pool_proj(192, 64)


class _ResidualInception(nn.Module):
    """x + scale * conv1x1(concat(branches(x))), then ReLU; scaling the residual stabilises training."""

    branches: tuple[str, ...] = ()

    def __init__(self, scale: float, relu: bool = True):
        super().__init__()
        self.scale = scale
        self.relu = nn.ReLU() if relu else None

    def forward(self, x):
        out = self.conv2d(torch.cat([getattr(self, name)(x) for name in self.branches], 1))
        out = out * self.scale + x
        return self.relu(out) if self.relu is not None else out


class Block35(_ResidualInception):
    """Inception-ResNet-A, 35x35 (Figure 16)."""

    branches = ("branch0", "branch1", "branch2")

    def __init__(self, scale: float = 0.17):
        super().__init__(scale)
        self.branch0 = BasicConv2d(320, 32, 1)
        self.branch1 = nn.Sequential(BasicConv2d(320, 32, 1), BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(
            BasicConv2d(320, 32, 1), BasicConv2d(32, 48, 3, padding=1), BasicConv2d(48, 64, 3, padding=1)
        )
        self.conv2d = nn.Conv2d(128, 320, 1)


class Block17(_ResidualInception):
    """Inception-ResNet-B, 17x17 (Figure 17)."""

    branches = ("branch0", "branch1")

    def __init__(self, scale: float = 0.10):
        super().__init__(scale)
        self.branch0 = BasicConv2d(1088, 192, 1)
        self.branch1 = nn.Sequential(BasicConv2d(1088, 128, 1), _conv1x7(128, 160), _conv7x1(160, 192))
        self.conv2d = nn.Conv2d(384, 1088, 1)


class Block8(_ResidualInception):
    """Inception-ResNet-C, 8x8 (Figure 19)."""

    branches = ("branch0", "branch1")

    def __init__(self, scale: float = 0.20, relu: bool = True):
        super().__init__(scale, relu)
        self.branch0 = BasicConv2d(2080, 192, 1)
        self.branch1 = nn.Sequential(BasicConv2d(2080, 192, 1), _conv1x3(192, 224), _conv3x1(224, 256))
        self.conv2d = nn.Conv2d(448, 2080, 1)


class Mixed6a(_Concat):
    """Reduction-A with (k, l, m, n) = (256, 256, 384, 384)."""

    branches = ("branch0", "branch1", "branch2")

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(320, 384, 3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(320, 256, 1), BasicConv2d(256, 256, 3, padding=1), BasicConv2d(256, 384, 3, stride=2)
        )
        self.branch2 = nn.MaxPool2d(3, 2)


class Mixed7a(_Concat):
    """Reduction-B of Inception-ResNet-v2 (Figure 18)."""

    branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, stride=2))
        self.branch2 = nn.Sequential(
            BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, padding=1), BasicConv2d(288, 320, 3, stride=2)
        )
        self.branch3 = nn.MaxPool2d(3, 2)


class InceptionResNetV2(nn.Module):
    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2
    ):
        super().__init__()
        self.conv2d_1a = BasicConv2d(in_chans, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, 2)
        self.mixed_5b = Mixed5b()
        self.repeat = nn.Sequential(*[Block35(0.17) for _ in range(10)])
        self.mixed_6a = Mixed6a()
        self.repeat_1 = nn.Sequential(*[Block17(0.10) for _ in range(20)])
        self.mixed_7a = Mixed7a()
        self.repeat_2 = nn.Sequential(*[Block8(0.20) for _ in range(9)])
        self.block8 = Block8(1.0, relu=False)
        self.conv2d_7b = BasicConv2d(2080, 1536, 1)
        self.num_features = 1536
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)  # keep probability 0.8 in the paper
        self.last_linear = nn.Linear(1536, num_classes)
        _init_tf_slim(self, "xavier")

    def forward(self, x):
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.maxpool_5a(self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x))))
        x = self.repeat(self.mixed_5b(x))
        x = self.repeat_1(self.mixed_6a(x))
        x = self.block8(self.repeat_2(self.mixed_7a(x)))
        x = torch.flatten(self.global_pool(self.conv2d_7b(x)), 1)
        return self.last_linear(self.dropout(x))


@register_model
def inception_v2(**kwargs):
    return BNInception(**kwargs)


@register_model
def inception_v3(**kwargs):
    return InceptionV3(**kwargs)


@register_model
def inception_v4(**kwargs):
    return InceptionV4(**kwargs)


@register_model
def inception_resnet_v2(**kwargs):
    return InceptionResNetV2(**kwargs)
