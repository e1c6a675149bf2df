"""Things around the pipeline.

metrics.py    J / mIoU, boundary F, calibration: the array-level `Scorer`
evaluate.py   score label folders against ground truth, and the report tables
bench.py      quality + speed on densely labeled clips, memory on long generated clips
synth/        synthetic clips with exact labels and occlusions (scenes, writer, `LongClip`)
demo.py       the whole job on a generated clip, scored; preview.py draws its contact sheet
cycles.py     cycle-consistency samples for training the refiner; train.py the training loop
"""
