"""Video files: telling them apart by content, reading, grading frame by frame and writing (PyAV).

:mod:`lutgen.video.probe` is cheap and never imports PyAV; the other modules import it (``av``) and
are loaded only by the commands that grade a video.
"""
