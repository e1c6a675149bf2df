"""The refine stage: what repairs the warped labels with the frame, and how it is trained.

load.py           which refiner a run uses: default (classic + boundary) | classic | a weights file
device.py         where the networks run (cpu, cuda) and CUDA's repeatability settings
classic_train.py  fit the classic refiner's strengths (core/refine.py) on labeled clips
boundary/         the default network: class-agnostic, full resolution near the label boundaries,
                  checked (and optionally learned) per clip on round trips of its keyframes, and the
                  confidence calibrated on them
prior/            a dataset's class prior (`autolabel train DATASET`): a U-Net that learns what the
                  dataset's classes look like, used between the classic refiner and the boundary network
"""
