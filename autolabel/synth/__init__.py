"""Synthetic clips with exact labels and occlusion masks: scene generation (`make_clip`,
in scenes.py with its textures and motion) and writing/streaming clips (`write_clip`,
`LongClip`, in writer.py)."""
from .scenes import MOTIONS, SyntheticClip, make_clip
from .writer import LABEL_FORMATS, LongClip, davis_palette, write_clip

__all__ = ["MOTIONS", "LABEL_FORMATS", "SyntheticClip", "LongClip", "make_clip", "write_clip", "davis_palette"]
