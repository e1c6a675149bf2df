"""Dense optical flow between neighbouring frames, behind one small interface.

A backend is a callable `(gray_a, gray_b) -> flow` with flow[y, x] = (dx, dy)
such that pixel (x, y) of `a` is seen at (x + dx, y + dy) in `b`. `flow_pair`
gives both directions, which the warp stage needs for its consistency check.
"""
from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from .half import to_half, to_single

FlowBackend = Callable[[np.ndarray, np.ndarray], np.ndarray]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def dis_backend(preset: str = "medium") -> FlowBackend:
    """OpenCV's DIS flow: fast and good enough to be the floor of the pipeline's cost."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return lambda a, b: dis.calc(a, b, None)


def farneback_backend(preset: str = "medium") -> FlowBackend:
    levels, iterations = {"ultrafast": (3, 2), "fast": (4, 3), "medium": (5, 5)}[preset]
    return lambda a, b: cv2.calcOpticalFlowFarneback(
        a, b, None, pyr_scale=0.5, levels=levels, winsize=15, iterations=iterations,
        poly_n=5, poly_sigma=1.1, flags=0)


BACKENDS: dict[str, Callable[[str], FlowBackend]] = {"dis": dis_backend, "farneback": farneback_backend}


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def use_threads(threads: int | None = None) -> int:
    """Let OpenCV use `threads` threads (None: every core); returns how many."""
    threads = threads or cores()
    cv2.setNumThreads(threads)
    return threads


def to_gray(frame: np.ndarray, scale: float = 1.0) -> np.ndarray:
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return gray


def upscale_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """Flow computed on a downscaled frame, resampled to full size in full-size pixels."""
    if flow.shape[1] == width and flow.shape[0] == height:
        return flow
    sx, sy = width / flow.shape[1], height / flow.shape[0]
    flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= sx
    flow[..., 1] *= sy
    return flow


class FlowEstimator:
    """Both-direction flow between consecutive grey frames at a chosen working scale.

    Flows are rounded to float16 at the working scale as soon as they are computed:
    that is what a flow cache stores, so a cached run is byte-identical to an
    uncached one.
    """

    def __init__(self, backend: str = "dis", preset: str = "medium", scale: float = 1.0, cache=None,
                 threads: int = 2):
        if backend not in BACKENDS:
            raise ValueError(f"unknown flow backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown flow preset {preset!r}; choose one of {', '.join(DIS_PRESETS)}")
        if not 0 < scale <= 1:
            raise ValueError("flow scale must be in (0, 1]")
        self.backend, self.preset, self.scale = backend, preset, scale
        self.cache = cache  # a FlowCache, or None
        # One backend object per direction: with 2 threads or more, the two directions run at once.
        self._flow_forward = BACKENDS[backend](preset)
        self._flow_backward = BACKENDS[backend](preset)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="flow-backward") if threads > 1 else None

    @property
    def key(self) -> str:
        """What, besides the frames, the flow depends on."""
        return f"{self.backend}-{self.preset}-{self.scale}-opencv{cv2.__version__}"

    def gray(self, frame: np.ndarray) -> np.ndarray:
        return to_gray(frame, self.scale)

    def pair_small(self, gray_a: np.ndarray, gray_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow_forward a->b, flow_backward b->a) at the working scale, float16."""
        if self.cache is not None:
            cached = self.cache.load(gray_a, gray_b, self.key)
            if cached is not None:
                return cached
        # OpenCV releases the GIL: the two directions at once on two threads. On the shared 2-core
        # machine this was about twice as fast as one after the other on DIS's own threads
        # (measured by `autolabel bench`, which times both).
        if self._pool is None:
            flows = (to_half(self._flow_forward(gray_a, gray_b)), to_half(self._flow_backward(gray_b, gray_a)))
        else:
            backward = self._pool.submit(self._flow_backward, gray_b, gray_a)
            flows = (to_half(self._flow_forward(gray_a, gray_b)), to_half(backward.result()))
        if self.cache is not None:
            self.cache.save(gray_a, gray_b, self.key, *flows)
        return flows

    def pair(self, gray_a: np.ndarray, gray_b: np.ndarray, width: int, height: int):
        """(flow_forward a->b, flow_backward b->a), full size, float32."""
        return tuple(full_size(flow, width, height) for flow in self.pair_small(gray_a, gray_b))


def full_size(flow_small: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """A flow from `FlowEstimator.pair_small` (working scale, float16) at full size, float32 (in `out`, a
    full-size float32 array, when given and the flow is at full size)."""
    if out is not None and flow_small.shape[:2] != (height, width):
        out = None
    return upscale_flow(to_single(flow_small, out), width, height)


# Flow runs ahead of the pipeline by as many pairs as fit in the bytes the caller leaves it
# (at least 2, at most 32 pairs): enough to keep both cores busy through a segment's backward pass.
LOOKAHEAD_PAIRS = (2, 32)


@contextmanager
def _dropping_queued(pool: ThreadPoolExecutor):
    """A pool that, when its user stops early (Ctrl-C, an error, a generator closed), drops the
    queued jobs and waits only for the running one, instead of computing every pair ahead first."""
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def flow_pairs(read: Callable[[int], np.ndarray], starts: Iterable[int], estimator: FlowEstimator,
               timer=None, room: Callable[[], int] = lambda: 256 * 2**20,
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(t, frame t, frame t+1, flow t->t+1, flow t+1->t) for each t of `starts` (ascending), the
    flows as `FlowEstimator.pair_small` gives them (working scale, float16: half the bytes ahead).

    A helper thread reads frames and computes flow ahead of the caller, so flow keeps
    both cores busy while the caller warps, fuses and writes.
    Consecutive pairs share their middle frame, which is read once.
    `timer(stage)` (a StageTimer) gets the time of reading and of flow; `room()` says how many
    bytes the pairs computed ahead may take now.
    """
    def timed(stage):
        return timer(stage) if timer is not None else nullcontext()

    last = None  # (index, frame, gray) of the newest frame read; only the helper thread touches it

    def job(t):
        nonlocal last
        if last is not None and last[0] == t:
            _, frame, gray = last
        else:
            with timed("read"):
                frame = read(t)
            gray = estimator.gray(frame)
        with timed("read"):
            frame_next = read(t + 1)
        with timed("flow"):
            gray_next = estimator.gray(frame_next)
            flow_forward, flow_backward = estimator.pair_small(gray, gray_next)
        last = (t + 1, frame_next, gray_next)
        return t, frame, frame_next, flow_forward, flow_backward

    pending: deque = deque()
    starts = iter(starts)
    lookahead = LOOKAHEAD_PAIRS[0]
    with _dropping_queued(ThreadPoolExecutor(1, thread_name_prefix="flow-pairs")) as helper:  # jobs run in order
        for t in itertools.islice(starts, lookahead):
            pending.append(helper.submit(job, t))
        while pending:
            pair = pending.popleft().result()
            fewest, most = LOOKAHEAD_PAIRS
            lookahead = min(most, max(fewest, room() // sum(array.nbytes for array in pair[1:])))
            for t_next in itertools.islice(starts, max(0, lookahead - len(pending))):  # room may shrink
                pending.append(helper.submit(job, t_next))
            yield pair
