"""AlexNet, single-tower form (Krizhevsky, "One weird trick for parallelizing CNNs", 2014).

This is the 64-192-384-256-256 variant torchvision ships (61.1M parameters), not the two-GPU model
of the 2012 paper. The 224x224 input gives a 6x6x256 map after the last max-pool, flattened into
fc6, so the input size is fixed (no adaptive pooling: the TorchScript exporter rejects it).
"""

from __future__ import annotations

from torch import nn

from ..registry import register_model


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        self._init_weights()

    def _init_weights(self):
        # Krizhevsky et al. 2012, Section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and
        # the hidden fully connected layers (early positive inputs to the ReLUs), 0 elsewhere.
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for i, layer in enumerate(layers):
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.constant_(layer.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@register_model
def alexnet(**kwargs):
    return AlexNet(**kwargs)
