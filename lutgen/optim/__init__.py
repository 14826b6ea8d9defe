"""Finding a LUT from evidence: text under CLIP (``optimize``), before/after pairs (``fit``), reference
photos (``match``).

- :mod:`lutgen.optim.parameterisation`: :class:`BoundedLUT`, identity at the start, always in [0, 1];
- :mod:`lutgen.optim.views`: random resized crops and flips of device-resident images;
- :mod:`lutgen.optim.losses`: CLIP loss and the auxiliary losses (all zero at the identity);
- :mod:`lutgen.optim.trainer`: one optimisation step;
- :mod:`lutgen.optim.report`: before|after pictures, contact sheet, loss plot, losses.csv;
- :mod:`lutgen.optim.training_log`: the log folder of a run, written as the run goes;
- :mod:`lutgen.optim.lattice_fit`: regularised lattice regression from colour pairs (NumPy and SciPy);
- :mod:`lutgen.optim.transport`: sliced optimal transport of colour samples (NumPy).

Importing this package is cheap; the CLIP submodules import torch, the last two do not.
"""
