"""Results into other tools' formats: the DAVIS and Cityscapes benchmark layouts and CVAT.

export.py   `export`: one output folder into a benchmark or annotation-tool layout
cvat.py     CVAT's "Segmentation mask 1.1" zip
import_labels.py  `import`: corrected frames (a CVAT zip or label PNGs) back in as keyframes
"""
