"""The learned refiner (torch) and how refiners are trained.

model.py          the network: a small U-Net trunk (RGB + x/y) and a class head
samples.py        labeled frames at the working size, augmented crops of them
fit.py            the training loop shared by per-clip learning and `autolabel train` (resumable)
learned.py        the refine stage: classic output, then the network that learned this clip, fused
fusion.py         fit the network's weight and the confidence calibration on training clips
train.py          `autolabel train DATASET`: a dataset's classes from all its keyframes
weights.py        the weights file (loaded with weights_only=True) and the device
load.py           which refiner a run uses: default (learned) | classic | a weights file
classic_train.py  fit the classic (colour + guided filter) refiner's settings on labeled clips
"""
