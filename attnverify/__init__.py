"""attnverify: a symbolic and numeric verifier for attention as the solution of an optimisation problem."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("attnverify")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
