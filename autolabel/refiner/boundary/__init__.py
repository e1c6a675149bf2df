"""The boundary refiner (the default): base refiner's labels in, corrected labels and confidence out.

model.py       the network: one class against the rest, frame + carried labels in, a logit correction out
band.py        where it looks: crops around the base labels' boundaries, at full resolution
stage.py       the refine stage: per-clip validation on round trips, optional per-clip learning, fallback
confidence.py  the confidence, calibrated on the clip's round trips
weights.py     the weights file (weights_only loading)
train.py       pretraining on a sparsely labeled dataset: deformed labels stand in for the warp
"""
