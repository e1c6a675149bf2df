"""`autolabel review`: pictures of a propagation result that show where it is wrong.

run.py       `review(out, ...)`: reads OUT/labels, OUT/confidence, the frames (and ground truth), writes OUT/review/
draw.py      one frame's pictures: labels over the frame, confidence heat, errors, the worst region's box
palette.py   readable colours for every label format;  classes.py  class names (Cityscapes, names CSV)
sheet.py     contact-sheet.png;  timeline.py  timeline.png;  video.py  overlay.mp4
fonts.py     a system font, and which characters it cannot draw
rank_bench.py  does the expected score rank frames by their true error? (a table over labeled clips)
"""
from .run import review

__all__ = ["review"]
