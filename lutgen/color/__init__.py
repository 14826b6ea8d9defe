"""Colour maths: applying LUTs to colours, and colour spaces.

- :mod:`lutgen.color.cpu`: compiled kernels on NumPy arrays (``apply_lut_array``); no torch. 8-bit
  trilinear grading is compiled with LLVM (:mod:`lutgen.color.cpu_llvm`), every other case with Numba
  (:mod:`lutgen.color.cpu_numba`), each imported only when needed.
- :mod:`lutgen.color.torch_ops`: differentiable torch functions on image tensors.
- :mod:`lutgen.color.adaint`: the adaptive-interval LUT transform of AdaInt (torch).
- :mod:`lutgen.color.oklab`: sRGB, linear sRGB and Oklab conversions (NumPy, float64).

Import the submodule you need; this package imports neither, so importing it costs nothing.
"""
