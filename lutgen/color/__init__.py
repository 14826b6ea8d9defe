"""Applying LUTs to colours.

- :mod:`lutgen.color.cpu`: Numba kernels on NumPy arrays (``apply_lut_array``); no torch.
- :mod:`lutgen.color.torch_ops`: differentiable torch functions on image tensors.

Import the submodule you need; this package imports neither, so importing it costs nothing.
"""
