"""PNG pictures of the bent microtubule coloured by per-monomer potential energy
(like fig. 2 of Scott & Mjolsness 2021)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cgsurrogate.core.atomic import atomic_path
from cgsurrogate.core.errors import CGSurrogateError


def render_tube(path, positions, energies, rest_positions=None, title: str | None = None) -> Path:
    """Draw a side view (z along the tube, y the load direction) and the energy per turn.

    Parameters
    ----------
    path : path of the PNG to write (atomically)
    positions : array [N, 3] nm (one frame)
    energies : array [N] kJ/mol per monomer (colour)
    rest_positions : array [N, 3] nm, optional
        Drawn in light grey behind the bent tube.
    title : str, optional

    Returns
    -------
    Path of the PNG.
    """
    from matplotlib.figure import Figure  # no pyplot: its import costs 0.3-0.9 s more, measured

    x = np.asarray(positions, dtype=float)
    e = np.asarray(energies, dtype=float)
    if x.ndim != 2 or x.shape[1] != 3 or e.shape != (x.shape[0],):
        raise CGSurrogateError(f"positions {x.shape} and energies {e.shape} must be [N, 3] and [N]")
    fig = Figure(figsize=(13, 4.8))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3.0, 1.2]})
    if rest_positions is not None:
        r = np.asarray(rest_positions)
        ax.scatter(r[:, 2], r[:, 1], s=10, c="0.85", label="rest", zorder=1)
    # draw far monomers first (x is the viewing depth) so the near side is on top
    order = np.argsort(x[:, 0])
    sc = ax.scatter(x[order, 2], x[order, 1], c=e[order], s=22, cmap="viridis", edgecolors="k",
                    linewidths=0.2, zorder=2)
    ax.set_xlabel("z (nm), along the tube")
    ax.set_ylabel("y (nm), load direction -y")
    ax.set_aspect("equal")
    if rest_positions is not None:
        ax.legend(loc="lower left", fontsize=8)
    ax.set_title("side view, coloured by per-monomer potential energy", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    cb = fig.colorbar(sc, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label("energy per monomer (kJ/mol)")
    n = len(e)
    if n % 13 == 0:  # microtubule-like tube: energy per turn of 13 monomers along the tube
        ring_e = e.reshape(-1, 13).sum(1)
        ax2.plot(np.arange(len(ring_e)), ring_e, "o-", ms=3)
        ax2.set_xlabel("turn (13 monomers) from the clamped end")
        ax2.set_ylabel("energy per turn (kJ/mol)")
        ax2.set_title("energy along the tube")
    else:
        ax2.scatter(x[:, 0], x[:, 1], c=e, s=12, cmap="viridis")
        ax2.set_xlabel("x (nm)")
        ax2.set_ylabel("y (nm)")
        ax2.set_aspect("equal")
        ax2.set_title("end view")
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (:func:`cgsurrogate.core.atomic.atomic_path`) and close it
    (in pyplot, when pyplot made it; a bare ``matplotlib.figure.Figure`` needs no closing).

    Returns
    -------
    Path of the PNG.
    """
    import sys

    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close(fig)
    return path
