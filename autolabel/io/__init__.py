"""The pipeline's edges on disk: reading frames, label formats, keyframes, and atomic output.

frames.py     image folders and video files, one frame at a time
labels.py     label formats: detect, read, write (atomic)
keyframes.py  find and check a clip's keyframe labels
output.py     one clip from disk to disk: `run_clip` (staging, manifest.json last)
update.py     `propagate --update`: which segments changed keyframes touch, what of OUT stays
"""
