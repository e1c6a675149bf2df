"""Optical flow kept on disk, so reruns, resumed batches and parallel jobs compute each pair once.

An entry is the float16 flow of one pair of grey frames in both directions, as
`FlowEstimator` keeps it, so a cached run is byte-identical to an uncached one.
Entries are keyed by the frames' content, not their names: a renamed or copied
clip still hits, and a changed frame can never be served a stale flow.

Every entry is written to a temporary file beside its final name and renamed
into place, so concurrent writers (threads, processes, machines sharing the
folder) and killed runs never leave a half-written entry under a final name.
Two writers of one entry write the same bytes, so whichever rename lands last wins harmlessly.

An entry takes 8 bytes a pixel of the (scaled) frame: two directions of float16 (x, y), about
3.3 MB a frame pair at 854x480. A hit touches the entry, so `prune` removes the least recently
used first; a pruned entry only costs its flow again.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


class FlowCache:
    """`load`/`save` as `FlowEstimator` calls them; `hits` and `misses` count this object's lookups."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, gray_a: np.ndarray, gray_b: np.ndarray, key: str) -> Path:
        """Where the entry for this pair lives: sharded by the first two hex digits to keep folders small."""
        digest = hashlib.sha256(key.encode())
        for gray in (gray_a, gray_b):
            gray = np.ascontiguousarray(gray)
            digest.update(f"\0{gray.dtype.str}{gray.shape}\0".encode())
            digest.update(memoryview(gray).cast("B"))
        name = digest.hexdigest()
        return self.root / name[:2] / f"{name}.npy"

    def load(self, gray_a: np.ndarray, gray_b: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow a->b, flow b->a) as saved, or None when the pair is not cached."""
        expected_shape = (2, *gray_a.shape[:2], 2)
        try:
            pair = np.load(self.path(gray_a, gray_b, key), allow_pickle=False)
        except (OSError, ValueError):  # missing, or damaged outside our control (e.g. disk full)
            pair = None
        if pair is None or pair.dtype != np.float16 or pair.shape != expected_shape:
            self.misses += 1
            return None
        self.hits += 1
        try:
            os.utime(self.path(gray_a, gray_b, key))  # recently used: pruned last
        except OSError:  # a read-only cache still serves
            pass
        return pair[0], pair[1]

    def save(self, gray_a: np.ndarray, gray_b: np.ndarray, key: str,
             flow_forward: np.ndarray, flow_backward: np.ndarray) -> None:
        path = self.path(gray_a, gray_b, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        pair = np.stack([flow_forward, flow_backward]).astype(np.float16, copy=False)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                np.save(file, pair, allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, bytes, path) of every entry, least recently used first."""
        found = []
        for path in self.root.glob("??/*.npy"):
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile by another pruner
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        return sorted(found)

    def prune(self, max_bytes: int) -> dict:
        """Remove the least recently used entries until the cache holds at most `max_bytes`."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = freed = 0
        for _, size, path in entries:
            if total - freed <= max_bytes:
                break
            path.unlink(missing_ok=True)
            removed += 1
            freed += size
        return {"entries": len(entries) - removed, "bytes": total - freed, "removed": removed, "freed": freed}
