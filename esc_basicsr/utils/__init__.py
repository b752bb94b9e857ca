"""Helpers shared by the tools, data preparation and the BasicSR integration (the floor below them).

* :mod:`.image_io`: the one image reader and writer (EXIF orientation, pixel limit, bit depth, alpha).
* :mod:`.image_markers`: PNG/JPEG start and end markers (completeness checks without decoding).
* :mod:`.atomic`: every file written under a temporary name and renamed into place.
* :mod:`.output_paths`: which files a tool reads and writes; unsafe plans refused.
* :mod:`.matlab_resize`: MATLAB-compatible bicubic resizing (LR images, bicubic baselines).

Nothing here is imported by ``import esc_basicsr``; see docs/architecture.md for the floors.
"""
