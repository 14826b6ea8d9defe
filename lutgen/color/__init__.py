"""Colour maths: applying LUTs to colours, and colour spaces.

- :mod:`lutgen.color.cpu`: compiled kernels on NumPy arrays (``apply_lut_array``); no torch. Its Numba
  kernels live in :mod:`lutgen.color.cpu_numba`, imported only when one is needed.
- :mod:`lutgen.color.torch_ops`: differentiable torch functions on image tensors.
- :mod:`lutgen.color.adaint`: the adaptive-interval LUT transform of AdaInt (torch).
- :mod:`lutgen.color.oklab`: sRGB, linear sRGB and Oklab conversions (NumPy, float64).

Import the submodule you need; this package imports neither, so importing it costs nothing.
"""
