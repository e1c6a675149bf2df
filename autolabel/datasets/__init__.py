"""Many clips at once: `autolabel batch`'s machinery (its command is in autolabel/cli/batch.py).

layouts.py      find a dataset's clips: generic, DAVIS, Cityscapes, manifest files
batch.py        run clips: one (`run_job`), in processes, or on Ray (`run_batch`); shards, report
fingerprint.py  what a clip's result depends on, resume (`complete_manifest`) and sealing
flowcache.py    optical flow kept on disk across runs
"""
