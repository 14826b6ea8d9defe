"""Imports every command module so that each registers itself on :data:`lutgen.cli.app`."""

from lutgen.cli import enhance, evaluate, fit, infer, info, match, optimize, train  # noqa: F401
from lutgen.cli import hald  # noqa: F401
from lutgen.cli import convert  # noqa: F401
from lutgen.cli import combine  # noqa: F401
from lutgen.cli import invert  # noqa: F401
from lutgen.cli import mix  # noqa: F401
from lutgen.cli import rank  # noqa: F401
from lutgen.cli import score  # noqa: F401
from lutgen.cli import library  # noqa: F401
