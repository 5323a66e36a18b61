"""VoVNet (Lee et al., "An Energy and GPU-Computation Efficient Backbone Network for Real-Time
Object Detection", CVPRW 2019) and VoVNetV2 (Lee & Park, "CenterMask: Real-Time Anchor-Free
Instance Segmentation", CVPR 2020), as ImageNet-1k classifiers.

A One-Shot Aggregation (OSA) module runs five 3x3 conv-BN-ReLU layers in sequence, concatenates
its input with all five outputs once, and fuses them with a 1x1 conv-BN-ReLU. The reference
configuration (the VoVNet paper's architecture table): a stem of three 3x3 convs (64, 64, 128
channels, strides 2, 1, 2), then four stages of OSA modules with 128/160/192/224 channels per
3x3 layer and 256/512/768/1024 output channels; stages 3-5 start with a 3x3 stride-2 max pool
(ceil mode, as the authors' code). VoVNet-39 has 1/1/2/2 modules per stage, VoVNet-57 1/1/4/3.
Global average pool and a 1000-way linear layer close the classifier.

VoVNetV2 adds to every OSA module (a) an identity shortcut wherever input and output shapes agree,
i.e. on every module after the first of a stage, and (b) effective squeeze-excitation (eSE): one
1x1 conv C→C (with bias, no reduction) on the globally pooled features, gated by a hard sigmoid
(relu6(x + 3) / 6), that rescales the channels before the shortcut is added. `vovnet-v2` is
VoVNetV2-39 (CenterMask also reports -57 and -99).

Decision: eSE sits in every OSA module, as the authors' code (youngwanLEE/vovnet-detectron2, also
CenterMask) builds it. timm's `ese_vovnet39b` places eSE only on the last module of each stage,
which is why its published 24.6M is 1,640,192 parameters (the eSE of the first modules of stages 4
and 5) below this model's count.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model

STEM_CHANNELS = (64, 64, 128)
STAGE_CONV_CHANNELS = (128, 160, 192, 224)
STAGE_OUT_CHANNELS = (256, 512, 768, 1024)
LAYERS_PER_MODULE = 5
MODULES_PER_STAGE = {39: (1, 1, 2, 2), 57: (1, 1, 4, 3)}


class EffectiveSE(nn.Module):
    """eSE (CenterMask): a single C→C fully connected layer, no channel reduction."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc(self.pool(x)))


class OSAModule(nn.Module):
    def __init__(
        self,
        in_channels: int,
        conv_channels: int,
        out_channels: int,
        num_layers: int = LAYERS_PER_MODULE,
        identity: bool = False,
        ese: bool = False,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            ConvBNAct(in_channels if i == 0 else conv_channels, conv_channels, 3) for i in range(num_layers)
        )
        self.concat = ConvBNAct(in_channels + num_layers * conv_channels, out_channels, 1)
        self.ese = EffectiveSE(out_channels) if ese else nn.Identity()
        self.identity = identity
        if identity and in_channels != out_channels:
            raise ValueError("an identity shortcut needs equal input and output channels")

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(features[-1]))
        out = self.ese(self.concat(torch.cat(features, dim=1)))
        return out + x if self.identity else out


class OSAStage(nn.Sequential):
    def __init__(self, in_channels: int, conv_channels: int, out_channels: int, num_modules: int,
                 downsample: bool, v2: bool):
        layers: list[nn.Module] = []
        if downsample:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        for i in range(num_modules):
            layers.append(OSAModule(in_channels if i == 0 else out_channels, conv_channels, out_channels,
                                    identity=v2 and i > 0, ese=v2))
        super().__init__(*layers)


class VoVNet(nn.Module):
    def __init__(self, modules_per_stage=MODULES_PER_STAGE[39], v2: bool = False, num_classes: int = 1000,
                 in_chans: int = 3):
        super().__init__()
        c1, c2, c3 = STEM_CHANNELS
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, c1, 3, stride=2),
            ConvBNAct(c1, c2, 3),
            ConvBNAct(c2, c3, 3, stride=2),
        )
        stages, channels = [], c3
        for i, (conv, out, n) in enumerate(zip(STAGE_CONV_CHANNELS, STAGE_OUT_CHANNELS, modules_per_stage)):
            # stage 2 works at the stem's stride 4; stages 3-5 halve the resolution first
            stages.append(OSAStage(channels, conv, out, n, downsample=i > 0, v2=v2))
            channels = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self):
        # Authors' code: He normal (fan-in) for every conv, BN weight 1 bias 0, zero linear bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.classifier(self.pool(x).flatten(1))


@register_model("vovnet-39")
def vovnet_39(**kwargs):
    return VoVNet(MODULES_PER_STAGE[39], v2=False, **kwargs)


@register_model("vovnet-57")
def vovnet_57(**kwargs):
    return VoVNet(MODULES_PER_STAGE[57], v2=False, **kwargs)


@register_model("vovnet-v2")
def vovnet_v2(**kwargs):
    return VoVNet(MODULES_PER_STAGE[39], v2=True, **kwargs)
