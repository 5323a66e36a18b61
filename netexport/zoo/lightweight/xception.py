"""Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017).

Figure 5 of the paper at 299x299: entry flow (two unpadded 3x3 convs, 32 and 64 channels, the first
stride 2; three residual blocks to 128, 256 and 728 channels, each two separable convs and a 3x3/2
max pool, with a strided 1x1 conv + BN shortcut), middle flow (eight residual blocks of three 728-channel
separable convs with identity shortcuts), exit flow (a block to 1024 channels whose first separable
conv keeps 728, then separable convs to 1536 and 2048, global average pool, fully connected). A
separable conv is depthwise 3x3 then pointwise 1x1, with no BN or activation in between; every one is
followed by BN, and ReLUs come before the separable convs inside blocks (not before the first block's).

Decided: the paper's optional fully connected layers before the classifier are left out, as in the
released Keras model (22.9M parameters, Table 3). Module names follow the Keras port in Cadene's
pretrainedmodels / timm `legacy_xception` (conv1, block1..block12, rep, skip, conv3, conv4, fc), so
those state dicts load.
"""

from __future__ import annotations

from torch import nn

from ..registry import register_model


class SeparableConv2d(nn.Module):
    """Depthwise k x k conv then pointwise 1x1 conv, both bias-free."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, 1, padding, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """`reps` x (ReLU → separable conv → BN), a 3x3/2 max pool when strided, plus a shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reps: int,
        stride: int = 1,
        start_with_relu: bool = True,
        grow_first: bool = True,
    ):
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = self.skipbn = None
        # grow_first: the first separable conv changes the width; otherwise the last one does
        widths = [out_channels] * reps if grow_first else [in_channels] * (reps - 1) + [out_channels]
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            # not in place: the first ReLU's input is also the shortcut's input
            layers += [nn.ReLU(inplace=False), SeparableConv2d(channels, width), nn.BatchNorm2d(width)]
            channels = width
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x):
        shortcut = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + shortcut


class Xception(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, middle_blocks: int = 8):
        super().__init__()
        # entry flow
        self.conv1 = nn.Conv2d(in_chans, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        # middle flow
        for i in range(middle_blocks):
            setattr(self, f"block{4 + i}", Block(728, 728, 3, 1))
        # exit flow
        self.num_blocks = 4 + middle_blocks
        setattr(self, f"block{self.num_blocks}", Block(728, 1024, 2, 2, grow_first=False))
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.relu4 = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 2048
        self.fc = nn.Linear(2048, num_classes)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        for i in range(1, self.num_blocks + 1):
            x = getattr(self, f"block{i}")(x)
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.relu4(self.bn4(self.conv4(x)))

    def forward(self, x):
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


@register_model
def xception(**kwargs) -> Xception:
    return Xception(**kwargs)
