"""Imports every command module so that each registers itself on :data:`lutgen.cli.app`."""

from lutgen.cli import info, infer  # noqa: F401

try:  # optimize is registered when its module is present
    from lutgen.cli import optimize  # noqa: F401
except ModuleNotFoundError as error:  # pragma: no cover
    if error.name != "lutgen.cli.optimize":
        raise
