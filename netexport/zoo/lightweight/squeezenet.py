"""SqueezeNet (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", arXiv:1602.07360, 2016).

- squeezenet1.0: Table 1 of the paper: 7x7/2 conv with 96 channels, eight Fire modules (1x1 squeeze →
  parallel 1x1 and 3x3 expands, concatenated), 3x3/2 max pools after conv1, fire4 and fire8.
- squeezenet1.1: the v1.1 of the authors' repository (forresti/SqueezeNet): 3x3/2 conv with 64
  channels and the pools moved earlier (after conv1, fire3, fire5), about 2.4x less computation at
  the same accuracy.

No batch norm. Max pools round up (Caffe's ceil mode, exported as MaxPool ceil_mode=1). The classifier
is dropout → 1x1 conv to the classes → ReLU → global average pool, so the logits are non-negative.
Module names follow torchvision's SqueezeNet (features.N, classifier.1), so its state dicts load.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model


class Fire(nn.Module):
    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            (self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))), 1
        )


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)


# Fire modules as (squeeze, expand) with equal 1x1 and 3x3 expands; "M" is a max pool.
FIRE_1_0 = ((16, 64), (16, 64), (32, 128), "M", (32, 128), (48, 192), (48, 192), (64, 256), "M", (64, 256))
FIRE_1_1 = ((16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192), (64, 256), (64, 256))


class SqueezeNet(nn.Module):
    def __init__(
        self,
        version: str = "1.0",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        if version == "1.0":
            stem, plan = nn.Conv2d(in_chans, 96, 7, stride=2), FIRE_1_0
        elif version == "1.1":
            stem, plan = nn.Conv2d(in_chans, 64, 3, stride=2), FIRE_1_1
        else:
            raise ValueError(f"SqueezeNet version must be '1.0' or '1.1', not {version!r}")
        layers: list[nn.Module] = [stem, nn.ReLU(inplace=True), _pool()]
        channels = stem.out_channels
        for item in plan:
            if item == "M":
                layers.append(_pool())
            else:
                squeeze, expand = item
                layers.append(Fire(channels, squeeze, expand, expand))
                channels = 2 * expand
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate), nn.Conv2d(channels, num_classes, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        self._init_weights()

    def _init_weights(self):
        # Caffe's released model: Xavier for the convs, N(0, 0.01) for the classifier conv, zero biases
        final_conv = self.classifier[1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x)).flatten(1)


@register_model("squeezenet1.0")
def squeezenet1_0(**kwargs) -> SqueezeNet:
    return SqueezeNet("1.0", **kwargs)


@register_model("squeezenet1.1")
def squeezenet1_1(**kwargs) -> SqueezeNet:
    return SqueezeNet("1.1", **kwargs)
