"""Training samples: labeled frames at the network's working size, and random crops of them.

A `LabeledFrames` holds each labeled frame once, shrunk to the working size (a dataset's
few hundred keyframes fit in memory: 400 CamVid frames are ~130 MB). `batches` draws
augmented crops from them with one seeded generator, so a run is repeatable step for step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

IGNORE = 255  # in `labels`: pixels that teach nothing (unlabeled, or a class the head lacks)


def frame_miou(prediction: np.ndarray, label: np.ndarray, n_classes: int) -> float:
    """mIoU of one frame over the classes present in the label or the prediction; IGNORE pixels left out."""
    valid = label != IGNORE
    joint = np.bincount(label[valid].astype(np.int64) * n_classes + prediction[valid],
                        minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    inter = np.diag(joint)
    union = joint.sum(0) + joint.sum(1) - inter
    return float((inter[union > 0] / union[union > 0]).mean()) if (union > 0).any() else 1.0


@dataclass
class LabeledFrames:
    frames: list[np.ndarray] = field(default_factory=list)   # H x W x 3 uint8 RGB, working size
    labels: list[np.ndarray] = field(default_factory=list)   # H x W uint8 class index, IGNORE = none

    def add(self, frame: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> None:
        """`label`: class indices at the frame's size; both are shrunk to `size` (width, height)."""
        self.frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        self.labels.append(cv2.resize(label.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST))

    def __len__(self) -> int:
        return len(self.frames)

    def class_weights(self, n_classes: int) -> np.ndarray:
        """Inverse square root of each class's pixel share: small classes (poles, signs) count,
        without letting a handful of pixels dominate. Mean 1 over the classes present."""
        counts = sum(np.bincount(label.ravel(), minlength=IGNORE + 1)[:n_classes] for label in self.labels)
        weights = np.zeros(n_classes)
        present = counts > 0
        weights[present] = (counts[present] / counts[present].sum()) ** -0.5
        return weights / max(weights[present].mean(), 1e-12) if present.any() else np.ones(n_classes)

    def batches(self, crop: int, batch: int, seed: int):
        """Endless (images N x crop x crop x 3 uint8, labels N x crop x crop, x0, y0, span) batches:
        random frame, scale 0.75-1.33, horizontal flip, brightness and colour jitter. x0/y0 are the
        crop's top-left in the frame's [-1, 1] coordinates and `span` its share of the frame."""
        rng = np.random.default_rng(seed)
        while True:
            images, labels = np.zeros((batch, crop, crop, 3), np.uint8), np.full((batch, crop, crop), IGNORE, np.uint8)
            x0, y0, span_x, span_y = (np.zeros(batch, np.float32) for _ in range(4))
            for n in range(batch):
                i = int(rng.integers(len(self.frames)))
                frame, label = self.frames[i], self.labels[i]
                height, width = label.shape
                side = min(int(round(crop / rng.uniform(0.75, 1.33))), height, width)
                top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
                image = cv2.resize(frame[top:top + side, left:left + side], (crop, crop), interpolation=cv2.INTER_LINEAR)
                target = cv2.resize(label[top:top + side, left:left + side], (crop, crop), interpolation=cv2.INTER_NEAREST)
                x0[n], y0[n] = 2 * left / width - 1, 2 * top / height - 1
                span_x[n], span_y[n] = side / width, side / height
                if rng.random() < 0.5:
                    image, target = image[:, ::-1], target[:, ::-1]
                    x0[n] = -(x0[n] + 2 * span_x[n])   # the flipped crop's left edge, mirrored
                gain = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3)
                images[n] = np.clip(image * gain, 0, 255).astype(np.uint8)
                labels[n] = target
            yield images, labels, x0, y0, span_x, span_y
