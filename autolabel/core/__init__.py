"""The per-frame stages of propagation: arrays in, arrays out, no file I/O.

In the order a frame meets them:

1. flow.py      optical flow between neighbouring frames, both directions, a prefetching stream of pairs
2. warp.py      carry labels along the flow, forward-backward consistency (per-pixel reliability)
3. refine.py    the refiner network that repairs warped labels (opt-in), and its loader
4. fuse.py      combine the two keyframes' propagations by reliability; label and confidence
5. pipeline.py  the segment walk tying them together (`Settings`, `Propagator`, `propagate`, `ClassSet`)

memory.py keeps freed frame-sized arrays from piling up in the C heap (glibc's mmap threshold).
"""
