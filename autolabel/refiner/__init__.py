"""Learning the refine stage from sparse labels.

classic_train.py  fit the classic (colour + guided filter) refiner's settings on labeled clips
"""
