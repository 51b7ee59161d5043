"""Run-wide settings a check may read: the seed and where figures go.

Checks take no arguments; they draw their randomness from :func:`rng` (one fixed seed,
so every run is reproducible) and save figures through :func:`save_figure`.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np

from . import atomic

SEED = 20261125
FIGURE_DIR = Path("docs/figures")


def rng(label: str) -> np.random.Generator:
    """A generator seeded by the run seed and a label, so checks do not share streams."""
    return np.random.default_rng([SEED, zlib.crc32(label.encode())])


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (the one place that selects it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, name: str) -> str:
    """Save a matplotlib figure as PNG under FIGURE_DIR; returns the path relative to docs/."""
    import matplotlib.pyplot as plt

    FIGURE_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURE_DIR / f"{name}.png"
    buf = io.BytesIO()
    # fixed metadata so the PNG bytes do not change from run to run
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic.write_bytes(path, buf.getbuffer())  # never a half-written PNG
    return f"figures/{name}.png"
