"""How good is a result, and how fast: scoring against ground truth and the benchmarks.

metrics.py    IoU, J, mIoU, boundary F, calibration: the array-level `Scorer`
protocols.py  the official DAVIS and Cityscapes scoring (evaluate --protocol), frame identity
evaluate.py   score label folders against ground truth
report.py     evaluate's report as tables
bench.py      quality + speed on densely labeled clips, memory on long generated clips
"""
