"""Rec.709 luma and the levels at which a colour counts as black or white (pure constants, no imports).

Shared by the auxiliary losses of ``optimize`` (:mod:`lutgen.optim.losses`), the black-and-white
representation (:mod:`lutgen.optim.parameterisation`) and the pulls of ``fit`` and ``match``
(:mod:`lutgen.optim.lattice_fit`), so that all of them mean the same blacks and whites.
"""

LUMA_709 = (0.2126, 0.7152, 0.0722)
"""Rec.709 luma weights of R, G and B (applied to the encoded values, as video luma is)."""
BLACK_LUMA = 0.01
"""Below this luma a colour is black: its lift is what black preservation penalises."""
WHITE_LUMA = 0.99
"""Above this luma a colour is white: highlight preservation keeps it white."""
