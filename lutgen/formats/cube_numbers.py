"""The vectorised parser of ``.cube`` data rows: whole blocks of lines at once, exactly like ``float()``.

:func:`fast_rows` reads a block of plainly valid rows, or says ``None`` and leaves the block to
the line-by-line parser of :mod:`lutgen.formats.cube`, which finds the error and its line.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

_ALLOWED_BYTES = np.zeros(256, dtype=bool)
_ALLOWED_BYTES[list(b"0123456789.+-eE \t\n")] = True
_MANY_SPECIAL = 4096  # more tokens than this with an exponent or 16+ digits: numpy's text parser
_MAX_EXACT_DIGITS = 15  # an integer of 15 digits is below 2**53, so it and its quotient by 10**k are exact
_DIGIT, _DOT, _PLUS, _MINUS, _LOWER_E, _UPPER_E, _NEWLINE = 48, 46, 43, 45, 101, 69, 10


def fast_rows(block: bytes) -> np.ndarray | None:
    """The rows of ``block`` (lines of three numbers, or blank), shape ``(rows, 3)``, or ``None``.

    ``None`` means the block is not plainly valid (a stray character, a line without exactly three
    numbers, a malformed or non-finite number); the careful pass then finds the error. Numbers of
    up to 15 digits without an exponent are assembled as integers and divided by a power of ten,
    which is exact (the same float64 as ``float()``); the others go through ``float()`` one by one,
    or through numpy's text parser (also exact) when there are many of them. Only ASCII spaces,
    tabs and line feeds separate numbers.
    """
    codes = np.frombuffer(block, dtype=np.uint8)
    counts = np.bincount(codes, minlength=256)
    if counts[~_ALLOWED_BYTES].any():
        return None
    solid = np.zeros(codes.size + 2, dtype=np.int8)
    solid[1:-1] = codes > 32  # only tab, newline and space lie at or below 32 here
    edges = solid[1:] - solid[:-1]
    del solid
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    del edges
    if starts.size % 3:
        return None
    if starts.size == 0:
        return np.empty((0, 3))
    line_ends = np.append(np.flatnonzero(codes == _NEWLINE), codes.size)
    per_line = np.diff(np.searchsorted(starts, line_ends), prepend=0)
    if not np.all((per_line == 0) | (per_line == 3)):
        return None
    del line_ends, per_line
    tokens = _TokenLayout.of(codes, counts, starts, ends)
    if tokens is None:
        return None
    special = np.flatnonzero(tokens.special)
    if special.size > _MANY_SPECIAL:
        values = _numpy_text_parse(block, starts.size)
        if values is None:
            return None
    else:
        values = np.empty(starts.size, dtype=np.float64)
        plain = ~tokens.special
        values[plain] = _assemble(codes, tokens.dot[plain], tokens.n_int[plain], tokens.n_frac[plain])
        np.negative(values, out=values, where=tokens.negative & plain)
        for index in special:
            try:
                values[index] = float(block[starts[index] : ends[index]])
            except ValueError:
                return None
    if not np.all(np.isfinite(values)):
        return None
    return values.reshape(-1, 3)


def _numpy_text_parse(block: bytes, count: int) -> np.ndarray | None:
    """All numbers of ``block`` by numpy's text parser (the same values as ``float()``), or ``None``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns, or raises, when a token is not a number
        try:
            values = np.fromstring(block, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    return values if values.size == count else None


@dataclass
class _TokenLayout:
    """Where the sign, dot and digits of every token lie; ``special`` tokens go through ``float()``."""

    dot: np.ndarray  # position of the dot, or of the token's end when it has none
    n_int: np.ndarray  # digits before the dot
    n_frac: np.ndarray  # digits after the dot
    negative: np.ndarray
    special: np.ndarray  # exponent or too many digits

    @classmethod
    def of(cls, codes, counts, starts, ends) -> _TokenLayout | None:
        count = starts.size
        special = np.zeros(count, dtype=bool)
        if counts[_LOWER_E] or counts[_UPPER_E]:
            exponent_at = np.flatnonzero((codes == _LOWER_E) | (codes == _UPPER_E))
            special[np.searchsorted(starts, exponent_at, "right") - 1] = True

        dot_at = np.flatnonzero(codes == _DOT)
        if dot_at.size == count and np.all((starts <= dot_at) & (dot_at < ends)):
            has_dot, dot = np.ones(count, dtype=bool), dot_at  # the usual case: one dot in every token
        else:
            dot_token = np.searchsorted(starts, dot_at, "right") - 1
            repeated = dot_token[1:][np.diff(dot_token) == 0]
            if not np.all(special[repeated]):
                return None  # "1.2.3"
            has_dot = np.zeros(count, dtype=bool)
            has_dot[dot_token] = True
            dot = ends.copy()
            dot[dot_token] = dot_at

        first = codes[starts]
        negative = first == _MINUS
        has_sign = negative | (first == _PLUS)
        if counts[_PLUS] + counts[_MINUS] != np.count_nonzero(has_sign):
            # Some sign is not a token's first character: only right after an exponent's e may it be.
            sign_at = np.flatnonzero((codes == _PLUS) | (codes == _MINUS))
            inner = sign_at[(sign_at > 0) & (codes[sign_at - 1] > 32)]
            if inner.size and not np.all((codes[inner - 1] == _LOWER_E) | (codes[inner - 1] == _UPPER_E)):
                return None  # "1-2", "--1"

        n_int = dot - starts - has_sign
        n_frac = ends - dot - has_dot
        if np.any((n_int + n_frac < 1) & ~special):
            return None  # "-", ".", "-."
        special |= n_int + n_frac > _MAX_EXACT_DIGITS
        widest_frac = n_frac[~special].max(initial=0)
        special |= n_int + widest_frac > _MAX_EXACT_DIGITS
        return cls(dot, n_int, n_frac, negative, special)


def _assemble(codes: np.ndarray, dot: np.ndarray, n_int: np.ndarray, n_frac: np.ndarray) -> np.ndarray:
    """The unsigned values of plain tokens: all digits as one integer over 10**(widest fraction).

    Every digit is gathered by its offset from the token's dot, so each offset has a fixed power of
    ten. The integers stay below 2**53, so the conversion to float64 and the division are exact.
    """
    if dot.size == 0:
        return np.empty(0)
    int_width, frac_width = int(n_int.max()), int(n_frac.max())
    pad_left, pad_right = np.full(int_width, _DIGIT, np.uint8), np.full(frac_width + 1, _DIGIT, np.uint8)
    padded = np.concatenate([pad_left, codes, pad_right])
    mantissa = np.zeros(dot.size, dtype=np.int64)
    offsets = [*range(-int_width, 0), *range(1, frac_width + 1)]
    for offset in offsets:
        digit = np.take(padded[int_width + offset :], dot)
        # Offsets beyond a shorter token reach its neighbours' characters: read them as 0.
        if offset < 0 and -offset > n_int.min():
            digit = np.where(n_int >= -offset, digit, np.uint8(_DIGIT))
        elif offset > 0 and offset > n_frac.min():
            digit = np.where(n_frac >= offset, digit, np.uint8(_DIGIT))
        mantissa *= 10
        mantissa += digit
    mantissa -= _DIGIT * int("1" * len(offsets))
    return mantissa.astype(np.float64) / 10.0**frac_width


