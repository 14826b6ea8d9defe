"""lutgen: colour grading with 3D look-up tables.

Text-to-LUT optimisation with CLIP guidance, exact ``.cube`` reading and writing, fast
application of any ``.cube`` to images, and learned adaptive-interval LUTs.
"""

__version__ = "0.1.0"
