"""Text-to-LUT optimisation: the bounded LUT parameterisation, random views, losses and the loop.

- :mod:`lutgen.optim.parameterisation`: :class:`BoundedLUT`, identity at the start, always in [0, 1];
- :mod:`lutgen.optim.views`: random resized crops and flips of device-resident images;
- :mod:`lutgen.optim.losses`: CLIP loss and the auxiliary losses (all zero at the identity);
- :mod:`lutgen.optim.trainer`: one optimisation step;
- :mod:`lutgen.optim.report`: before|after pictures, contact sheet, loss plot, losses.csv;
- :mod:`lutgen.optim.training_log`: the log folder of a run, written as the run goes.

Importing this package is cheap; the submodules import torch.
"""
