"""The labeling loop around propagation: which frames to label, and where a result is wrong.

suggest.py        flow reliability along a clip and keyframe placement (arrays)
suggest_clip.py   `suggest` on disk: a clip folder or an output folder
suggest_bench.py  does suggest beat uniform spacing? the per-clip table
review/           overlay video, contact sheet, timeline; readable colours and class names
"""
