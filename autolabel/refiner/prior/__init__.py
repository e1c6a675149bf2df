"""A dataset's class prior (`autolabel train DATASET`): what each class of a dataset looks like.

model.py    a small U-Net trunk (RGB + x/y) and a class head
samples.py  labeled frames at the working size, augmented crops of them
fit.py      the training loop shared by per-clip learning and dataset training (resumable)
stage.py    the refine stage: classic output combined with the network's class probabilities
trust.py    fit how far to trust the network, and the confidence calibration, on training clips
train.py    dataset training with hold-out scoring
weights.py  the weights file (weights_only loading)
"""
