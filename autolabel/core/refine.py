"""The refiner: repairs propagated labels where the warp went wrong.

Class-agnostic by construction, so one set of weights serves any label set (1
object or 30 classes). A small CNN trunk looks at the target frame and at
label-set-free summaries of the warped labels (reliability, photometric error of
the carried keyframe image, top probability, entropy, distance to the keyframe)
at a low working resolution (long side `work_size`, 256 px by default). From its
features it predicts:

* a per-class *unary* correction: the same tiny head is applied to every class
  channel (features + that channel's log-probability -> a logit), and a softmax
  across channels turns the logits back into probabilities;
* per-pixel *affinity kernels* (3x3, softmax-normalised, alternately at
  dilation 1 and 3) that redistribute those probabilities over a few
  iterations, CSPN-style: p(x) <- sum_k a_k(x) p(x + d_k), per channel, so
  labels flow from trustworthy pixels into disoccluded / drifted ones along
  image-coherent paths;
* a gate g in [0, 1] and a confidence map. The output at full resolution is
  g * upsample(refined) + (1 - g) * warped: where the warp is fine the sharp
  full-resolution warped labels are kept untouched.

Training (autolabel.tools.train) is self-supervised by cycle consistency.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "refiner.pt"
EPS = 1e-4
DEFAULT_CONFIG = {"width": 16, "iterations": 4, "work_size": 256, "version": 1}
N_INPUTS = 9  # rgb(3), reliability, photo error, top prob, normalised entropy, distance(2)


def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
                         nn.ReLU(inplace=True))


def _shifts(p: torch.Tensor, dilation: int) -> torch.Tensor:
    """B x C x H x W -> B x 9 x C x H x W: the 3x3 neighbourhood at `dilation` (replicate border)."""
    h, w = p.shape[-2:]
    padded = F.pad(p, (dilation,) * 4, mode="replicate")
    out = [padded[..., dy * dilation:dy * dilation + h, dx * dilation:dx * dilation + w]
           for dy in range(3) for dx in range(3)]
    return torch.stack(out, dim=1)


class RefinerNet(nn.Module):
    def __init__(self, width: int = 16, iterations: int = 4, work_size: int = 256, **_):
        super().__init__()
        self.iterations, self.work_size = iterations, work_size
        w = width
        self.enc1 = nn.Sequential(conv(N_INPUTS, w), conv(w, w))
        self.enc2 = nn.Sequential(conv(w, 2 * w, stride=2), conv(2 * w, 2 * w, dilation=2), conv(2 * w, 2 * w))
        self.lateral = nn.Conv2d(2 * w, w, 1)
        self.dec = conv(w, w)
        # per-class unary head: shared projection of the features + the channel's own evidence
        self.unary_feat = nn.Conv2d(w, w, 1)
        self.unary_evidence = nn.Parameter(torch.zeros(w, 2))   # weights of (log p_c, p_c)
        self.unary_out = nn.Parameter(torch.zeros(w))
        self.unary_self = nn.Parameter(torch.ones(1))            # keeps log p_c (starts as identity)
        self.heads = nn.Conv2d(w, 18 + 2, 1)                      # 2 x 9 affinity logits, gate, confidence
        with torch.no_grad():
            self.heads.weight.mul_(0.1)
            self.heads.bias.zero_()
            self.heads.bias[4] = 3.0       # affinities start peaked on the centre (identity)
            self.heads.bias[13] = 3.0
            self.heads.bias[18] = -2.0     # gate starts mostly closed: output ~ warped labels
            self.heads.bias[19] = 1.0

    @staticmethod
    def inputs(frame, probs, reliability, photo_error, distance) -> torch.Tensor:
        """frame Bx3xHxW in [0,1], probs BxCxHxW, reliability/photo_error Bx1xHxW, distance B."""
        c = probs.shape[1]
        top = probs.max(dim=1, keepdim=True).values
        entropy = -(probs * torch.log(probs.clamp_min(EPS))).sum(1, keepdim=True)
        entropy = entropy / math.log(max(c, 2))
        d = distance.to(frame.dtype).view(-1, 1, 1, 1).expand_as(top)
        return torch.cat([frame - 0.5, reliability, photo_error * 4, top, entropy,
                          d / 30.0, torch.log1p(d) / math.log(31.0)], dim=1)

    def work_size_of(self, full, scale: float | None = None) -> tuple[int, int]:
        if scale is None:
            scale = min(1.0, self.work_size / max(full))
        return max(8, round(full[0] * scale)), max(8, round(full[1] * scale))

    def core(self, frame, probs, reliability, photo_error, distance):
        """At working resolution: (refined probs q, gate logit, confidence logit)."""
        size = tuple(probs.shape[-2:])
        x = self.inputs(frame, probs, reliability, photo_error, distance)
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        f = self.dec(f1 + F.interpolate(self.lateral(f2), size=size, mode="bilinear", align_corners=False))
        heads = self.heads(f)

        # unary: logit_c = self * log p_c + v . relu(A f + u [log p_c, p_c]), the same head for every channel
        logp = torch.log(probs.clamp_min(EPS))
        proj = self.unary_feat(f)                                             # B x w x h x w
        ev = torch.stack([logp, probs], dim=2)                                # B x C x 2 x h x w
        hidden = proj.unsqueeze(1) + torch.einsum("ke,bcehw->bckhw", self.unary_evidence, ev)
        logits = self.unary_self * logp + torch.einsum("k,bckhw->bchw", self.unary_out, F.relu(hidden))
        q = torch.softmax(logits, dim=1)

        # affinity propagation, alternating dilation 1 and 3
        kernels = [torch.softmax(heads[:, 0:9], dim=1).unsqueeze(2),
                   torch.softmax(heads[:, 9:18], dim=1).unsqueeze(2)]
        for i in range(self.iterations):
            q = (kernels[i % 2] * _shifts(q, 1 if i % 2 == 0 else 3)).sum(dim=1)
        return q, heads[:, 18:19], heads[:, 19:20]

    def forward(self, frame, probs, reliability, photo_error, distance, scale: float | None = None):
        """All full-size tensors (B x . x H x W); returns (probs, confidence) at full size.

        The trunk runs at `scale` x full size (default: long side = work_size). Used for
        training; `Refiner` does the same with OpenCV resizing on numpy arrays.
        """
        full = tuple(probs.shape[-2:])
        size = self.work_size_of(full, scale)

        def down(x):
            return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="area")

        def up(x):
            return x if tuple(x.shape[-2:]) == full else F.interpolate(
                x, size=full, mode="bilinear", align_corners=False)

        q, gate, confidence = self.core(down(frame), down(probs), down(reliability), down(photo_error), distance)
        gate = torch.sigmoid(up(gate))
        out = probs + gate * (up(q) - probs)
        out = out / out.sum(dim=1, keepdim=True).clamp_min(1e-6)
        return out, torch.sigmoid(up(confidence))


def build(config: dict | None = None) -> RefinerNet:
    return RefinerNet(**{**DEFAULT_CONFIG, **(config or {})})


def save_weights(net: RefinerNet, config: dict, path: Path, extra: dict | None = None) -> None:
    """Plain state_dict + small config dict, written atomically; loadable with weights_only=True."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": state, "config": dict(config), **(extra or {})}, tmp)
    tmp.replace(path)


def load_net(path: Path) -> tuple[RefinerNet, dict]:
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    config = {**DEFAULT_CONFIG, **blob.get("config", {})}
    net = build(config)
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return net, config


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Refiner:
    """The callable the pipeline takes: (frame, probs, reliability, photo_error, distance) ->
    (probs, reliability), numpy in and out."""

    def __init__(self, path: str | Path | None = None, device: str = "auto", threads: int | None = None):
        self.path = Path(path) if path is not None else DEFAULT_WEIGHTS
        if not self.path.is_file():
            raise FileNotFoundError(f"refiner weights not found: {self.path}")
        self.net, self.config = load_net(self.path)
        self.device = pick_device(device)
        self.net.to(self.device)
        if threads is not None:
            torch.set_num_threads(threads)
        self.name = f"wrp-refiner:{self.path.name}"

    def __call__(self, frame, probs, reliability, photo_error, distance):
        """One propagation (e.g. the fused one) -> (refined probs HxWxC, confidence HxW)."""
        return self.refine_sides(frame, [(probs, reliability, photo_error, distance)])[0]

    def refine(self, frame, probs, reliability):
        """The pipeline's interface: fused probabilities at a frame -> (refined probs, confidence).
        Interim, until refiner v2: the net sees no photometric error and distance 0."""
        return self(frame, probs, reliability, None, 0)

    @torch.inference_mode()
    def refine_sides(self, frame, sides):
        """Several propagations arriving at the same frame, refined in one batched pass:
        `sides` is a list of (probs, reliability, photo_error, distance); returns a list of
        (probs, confidence). Refining each keyframe's side before fusing them works better
        than refining the fused result (see models/MODEL_CARD.md)."""
        height, width, channels = sides[0][0].shape
        small_h, small_w = self.net.work_size_of((height, width))
        small = (small_w, small_h)

        def resize(a, size, interpolation):   # OpenCV: far faster than torch on CPU at full size
            a = np.ascontiguousarray(a, dtype=np.float32)
            if a.ndim == 2 or a.shape[2] <= 4:
                return cv2.resize(a, size, interpolation=interpolation).reshape(size[1], size[0], *a.shape[2:])
            parts = [cv2.resize(np.ascontiguousarray(a[..., i:i + 4]), size, interpolation=interpolation)
                     .reshape(size[1], size[0], -1) for i in range(0, a.shape[2], 4)]
            return np.concatenate(parts, axis=2)

        def down(a):
            return np.ascontiguousarray(a, dtype=np.float32) if a.shape[:2] == (small_h, small_w) \
                else resize(a, small, cv2.INTER_AREA)

        def up(a):
            return a if a.shape[:2] == (height, width) else resize(a, (width, height), cv2.INTER_LINEAR)

        dev = self.device
        n = len(sides)
        chw = lambda arrays: torch.from_numpy(np.stack(arrays)).to(dev).permute(0, 3, 1, 2)
        hw = lambda arrays: torch.from_numpy(np.stack(arrays)).to(dev)[:, None]
        frame_small = down(frame) * (1 / 255)
        zeros = np.zeros((small_h, small_w), np.float32)
        q, gate, confidence = self.net.core(
            chw([frame_small] * n), chw([down(s[0]) for s in sides]), hw([down(s[1]) for s in sides]),
            hw([zeros if s[2] is None else down(s[2]) for s in sides]),
            torch.tensor([float(s[3]) for s in sides], device=dev))
        q = q.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        gate = torch.sigmoid(gate[:, 0]).cpu().numpy()
        confidence = torch.sigmoid(confidence[:, 0]).cpu().numpy()
        results = []
        for i, (probs, *_rest) in enumerate(sides):
            out = up(q[i]).reshape(height, width, channels)
            out -= probs
            out *= up(gate[i])[..., None]
            out += probs
            np.clip(out, 0, None, out=out)
            out /= out.sum(axis=2, keepdims=True)
            results.append((out, up(confidence[i]).clip(0, 1).astype(np.float32)))
        return results


def load_refiner(path: str | Path | None = None, device: str = "auto") -> Refiner:
    return Refiner(path, device)
