"""Things around the pipeline.

metrics.py    J / mIoU, boundary F, calibration: the array-level `Scorer`
evaluate.py   score label folders against ground truth, and the report tables
bench.py      quality + speed on densely labeled clips, memory on long generated clips
synth/        synthetic clips with exact labels and occlusions (scenes, writer, `LongClip`)
demo.py       the whole job on a generated clip, scored, with `review`'s pictures
suggest.py    which frames to label (suggest_clip.py on disk, suggest_bench.py: does it beat uniform spacing?)
review/       pictures of a result that show where it is wrong (overlay video, contact sheet, timeline)
cycles.py     cycle-consistency samples for training the refiner; train.py the training loop
"""
