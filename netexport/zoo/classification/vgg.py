"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015).

Configurations A, B, D, E (vgg11/13/16/19), each also with batch norm after every convolution (the
torchvision `_bn` variants). A 224x224 input leaves 7x7x512 for fc6, so the input size is fixed
(no adaptive pooling: the TorchScript exporter rejects it at other sizes).
"""

from __future__ import annotations

from torch import nn

from ..registry import register_model

# Table 1 of the paper: 3x3 convolution widths, "M" a 2x2 max-pool.
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"
    ],
}


class VGG(nn.Module):
    def __init__(
        self,
        config: str,
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for width in CONFIGS[config]:
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                # torchvision keeps the conv bias in the BN variants too; kept for equal counts
                layers.append(nn.Conv2d(channels, width, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, num_classes),
        )
        self._init_weights()

    def _init_weights(self):
        # The paper's N(0, 0.01) needed pre-training net A to train the deeper ones; like the
        # torchvision reference we use He init for convolutions, N(0, 0.01) for the FC layers.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@register_model
def vgg11(**kwargs):
    return VGG("A", **kwargs)


@register_model
def vgg13(**kwargs):
    return VGG("B", **kwargs)


@register_model
def vgg16(**kwargs):
    return VGG("D", **kwargs)


@register_model
def vgg19(**kwargs):
    return VGG("E", **kwargs)


@register_model("vgg11-bn")
def vgg11_bn(**kwargs):
    return VGG("A", batch_norm=True, **kwargs)


@register_model("vgg13-bn")
def vgg13_bn(**kwargs):
    return VGG("B", batch_norm=True, **kwargs)


@register_model("vgg16-bn")
def vgg16_bn(**kwargs):
    return VGG("D", batch_norm=True, **kwargs)


@register_model("vgg19-bn")
def vgg19_bn(**kwargs):
    return VGG("E", batch_norm=True, **kwargs)
