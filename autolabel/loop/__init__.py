"""The labeling loop around propagation: which frames to label, and where a result is wrong.

suggest.py        flow reliability along a clip and keyframe placement (arrays)
suggest_clip.py   `suggest` on disk: a clip folder or an output folder
suggest_bench.py  does suggest beat uniform spacing? the per-clip table
suggest_fit.py    suggest's placement constants fitted leave-one-clip-out, the per-clip table
loop_bench.py     the loop once round, timed: review, fix the worst frames, import, update
review/           overlay video, contact sheet, timeline; readable colours and class names
"""
