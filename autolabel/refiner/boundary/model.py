"""The boundary network: one class against the rest, at full resolution, in residual form.

It reads, per pixel of a crop around a label boundary, the frame and what it refines:
the base refiner's probability of the class (as a logit), the fused warped probability of
the class, the warp's reliability and the distance to the nearest keyframe. It returns a
logit correction for that class. The same weights serve every class of every label set
(class-agnostic, as CascadePSP's refinement is): a 2-class DAVIS clip and a 19-class street
scene use one file. The caller renormalises the corrected classes against each other.

Two branches, as the errors it repairs are a few pixels wide but their cause (which side of
an edge a thin part is on) needs a wider view: a full-resolution one of plain 3x3
convolutions, and a half-resolution one with dilations 2, 4 and 8 (about 60 px across).
The image features are computed once per crop and shared by its classes. The last layer
starts at zero, so an untrained network gives exactly the base refiner's output.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IMAGE_WIDTH = 12
WIDTH = 16
# per class: the base's logit, the warped probability, reliability, distance share
LABEL_CHANNELS = 4
LOGIT_CLIP = 8.0
MEAN, STD = 0.45, 0.25


def _conv(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))


class BoundaryNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(_conv(3, IMAGE_WIDTH), _conv(IMAGE_WIDTH, IMAGE_WIDTH))
        self.full = _conv(IMAGE_WIDTH + LABEL_CHANNELS, WIDTH)
        self.context = nn.Sequential(_conv(WIDTH, WIDTH, 2), _conv(WIDTH, WIDTH, 4), _conv(WIDTH, WIDTH, 8))
        self.merge = nn.Sequential(nn.Conv2d(2 * WIDTH, WIDTH, 1), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(WIDTH, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def image_features(self, rgb: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W uint8-valued RGB -> N x IMAGE_WIDTH x H x W."""
        return self.image((rgb / 255 - MEAN) / STD)

    def forward(self, features: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """`features`: image features of each item's crop (M x IMAGE_WIDTH x H x W, repeated per class);
        `label`: M x LABEL_CHANNELS x H x W (label_inputs). Returns the logit correction, M x H x W."""
        x = self.full(torch.cat([features, label], 1))
        half = self.context(F.avg_pool2d(x, 2, ceil_mode=True))
        x = self.merge(torch.cat([x, F.interpolate(half, size=x.shape[-2:], mode="bilinear", align_corners=False)], 1))
        return self.out(x)[:, 0]


def base_logit(q: torch.Tensor) -> torch.Tensor:
    """logit of the base refiner's probability, clipped: the residual's starting point."""
    q = q.clamp(1e-6, 1 - 1e-6)
    return (q.log() - (1 - q).log()).clamp(-LOGIT_CLIP, LOGIT_CLIP)


def label_inputs(q: torch.Tensor, warped: torch.Tensor, reliability: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """M x LABEL_CHANNELS x H x W from per-item M x H x W maps (u: M, the distance share)."""
    return torch.stack([base_logit(q) / LOGIT_CLIP, warped, reliability,
                        u.view(-1, 1, 1).expand_as(q)], 1)
