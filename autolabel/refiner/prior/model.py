"""The refiner's network: a small U-Net that reads a frame and returns class logits.

The trunk sees RGB plus the pixel's x/y position (street classes live at typical heights),
goes down to 1/16 size, widens its view there with dilated convolutions (a car or a person
spans more than a 3x3 window there), and comes back up to 1/2 size with skip connections.
Its finest level is 1/2 size because on 2 CPU cores a full-size level costs 4x the time, and
the boundaries are the warp's and the guided filter's job: the network says what, not where. The head is a 1x1 convolution, one output per class: a clip or a
dataset brings its own label set, so the head is made for it while the trunk is shared.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WIDTHS = (24, 48, 64, 96)
# The network works at about this many pixels (854x480 -> 442x248, 2048x1024 -> 469x234).
WORK_PIXELS = 110_000
MEAN = torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1)
STD = torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1)


def conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Trunk(nn.Module):
    """Image (N x 5 x H x W: normalised RGB and x/y in [-1, 1]) -> features (N x WIDTHS[0] x H/2 x W/2)."""

    def __init__(self):
        super().__init__()
        w1, w2, w3, w4 = WIDTHS
        self.down1 = nn.Sequential(conv(5, w1, 2), conv(w1, w1))
        self.down2 = nn.Sequential(conv(w1, w2, 2), conv(w2, w2))
        self.down3 = nn.Sequential(conv(w2, w3, 2), conv(w3, w3))
        self.context = nn.Sequential(conv(w3, w4, 2), conv(w4, w4, dilation=2), conv(w4, w4, dilation=4),
                                     conv(w4, w4, dilation=8))
        self.up3 = conv(w4 + w3, w3)
        self.up2 = conv(w3 + w2, w2)
        self.up1 = conv(w2 + w1, w1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.down1(x)
        f2 = self.down2(f1)
        f3 = self.down3(f2)
        f = self.context(f3)
        f = self.up3(torch.cat([_up(f, f3), f3], 1))
        f = self.up2(torch.cat([_up(f, f2), f2], 1))
        return self.up1(torch.cat([_up(f, f1), f1], 1))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RefinerNet(nn.Module):
    """Trunk + a 1x1 head over `n_classes` classes."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.trunk = Trunk()
        self.head = nn.Conv2d(WIDTHS[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _up(self.head(self.trunk(x)), x)


def work_size(width: int, height: int, work_pixels: int = WORK_PIXELS) -> tuple[int, int]:
    """(width, height) the network sees a frame at: about `work_pixels`, never larger than the frame,
    both multiples of 16 (four halvings)."""
    scale = min(1.0, (work_pixels / (width * height)) ** 0.5)
    return max(16, round(width * scale / 16) * 16), max(16, round(height * scale / 16) * 16)


def network_input(images: np.ndarray, x0=None, y0=None, span_x=None, span_y=None) -> torch.Tensor:
    """N x H x W x 3 uint8 RGB -> N x 5 x H x W float input. A crop's x/y channels say where it lies
    in its frame: crop n starts at (x0[n], y0[n]) in [-1, 1] and covers span_x[n], span_y[n] of the
    frame's width and height. Without them, each image is a whole frame."""
    n, h, w, _ = images.shape
    rgb = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    rgb = (rgb - MEAN) / STD

    def per_image(values, default):
        return torch.full((n, 1, 1), default) if values is None else torch.as_tensor(
            np.asarray(values, np.float32)).view(n, 1, 1)

    x0, y0 = per_image(x0, -1.0), per_image(y0, -1.0)
    span_x, span_y = per_image(span_x, 1.0), per_image(span_y, 1.0)
    xs = x0 + 2 * span_x * torch.linspace(0, 1, w).view(1, 1, w)
    ys = y0 + 2 * span_y * torch.linspace(0, 1, h).view(1, h, 1)
    return torch.cat([rgb, xs.expand(n, h, w).unsqueeze(1), ys.expand(n, h, w).unsqueeze(1)], 1)
