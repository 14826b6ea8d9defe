"""Imports every command module so that each registers itself on :data:`lutgen.cli.app`."""

from lutgen.cli import enhance, evaluate, fit, infer, info, match, optimize, train  # noqa: F401
from lutgen.cli import hald  # noqa: F401
