"""Pictures of CG mappings.

* Molecules given as SMILES: an RDKit depiction (PNG) with each atom's bead number as in
  the JSON's ``cgnodes`` (beads numbered by their first atom), atoms and the bonds inside a
  bead in the bead's colour, cut bonds plain, and a legend (colour, bead number, atom
  count). RDKit's drawing is used so that ``cgmap`` needs no matplotlib (2 s to import).
* Structure files: a 2D projection with matplotlib, only up to :data:`MAX_DRAWN_ATOMS`
  atoms, where atoms and numbers can still be read; larger structures are written as PDB
  files for molecular viewers instead (:mod:`cgsurrogate.surrogate.cgmap.structure_io`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cgsurrogate.core.atomic import atomic_path, write_bytes_atomic

__all__ = ["PALETTE", "MAX_DRAWN_ATOMS", "drawable", "draw_smiles_mapping", "draw_graph_mapping", "draw_mapping"]

#: Bead colours (RGB 0..1), reused cyclically; the numbers on the atoms tell beads apart.
PALETTE = ((0.12, 0.47, 0.71), (1.0, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
           (0.68, 0.78, 0.91), (1.0, 0.73, 0.47), (0.60, 0.87, 0.54), (1.0, 0.60, 0.59), (0.77, 0.69, 0.84),
           (0.77, 0.61, 0.58), (0.97, 0.71, 0.82), (0.78, 0.78, 0.78), (0.86, 0.86, 0.55), (0.62, 0.85, 0.90))
#: Largest atom count drawn in 2D.
MAX_DRAWN_ATOMS = 150
_LEGEND_ROWS = 24


def drawable(graph) -> bool:
    """Whether a 2D picture of this graph can be read (at most :data:`MAX_DRAWN_ATOMS` atoms)."""
    return graph.num_atoms <= MAX_DRAWN_ATOMS


def _sizes(labels):
    return np.bincount(np.asarray(labels, dtype=np.int64))


def draw_smiles_mapping(smiles: str, labels, path, width: int = 760, height: int = 480) -> Path:
    """PNG of a SMILES molecule's mapping (RDKit). ``labels`` int [n heavy atoms] in RDKit's atom order."""
    from rdkit.Chem.Draw import rdMolDraw2D
    from rdkit.Geometry import Point2D

    from cgsurrogate.data.molchem import parse_smiles

    mol = parse_smiles(smiles)
    labels = np.asarray(labels, dtype=np.int64)
    colour = lambda b: PALETTE[int(b) % len(PALETTE)]  # noqa: E731
    for a in mol.GetAtoms():
        a.SetProp("atomNote", str(int(labels[a.GetIdx()])))
    atom_cols = {i: colour(b) for i, b in enumerate(labels.tolist())}
    bonds, bond_cols = [], {}
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        if labels[i] == labels[j]:
            bonds.append(b.GetIdx())
            bond_cols[b.GetIdx()] = colour(labels[i])
    legend_w = 190
    d = rdMolDraw2D.MolDraw2DCairo(width, height, width - legend_w, height)
    d.drawOptions().annotationFontScale = 0.9
    rdMolDraw2D.PrepareAndDrawMolecule(d, mol, highlightAtoms=list(atom_cols), highlightAtomColors=atom_cols,
                                       highlightBonds=bonds, highlightBondColors=bond_cols)
    d.SetOffset(0, 0)
    d.SetFontSize(13)
    sizes = _sizes(labels)
    rows = list(range(len(sizes)))[:_LEGEND_ROWS]
    x0 = width - legend_w + 8
    d.SetColour((0.0, 0.0, 0.0))
    d.DrawString(f"{len(sizes)} beads (number on atoms)", Point2D(x0 + 80, 14), rawCoords=True)
    for r, b in enumerate(rows):
        y = 36 + 18 * r
        d.SetColour(colour(b))
        d.SetFillPolys(True)
        d.DrawRect(Point2D(x0, y - 6), Point2D(x0 + 12, y + 6), rawCoords=True)
        d.SetColour((0.0, 0.0, 0.0))
        d.DrawString(f"bead {b}: {sizes[b]} atom{'s' if sizes[b] > 1 else ''}", Point2D(x0 + 72, y), rawCoords=True)
    if len(sizes) > len(rows):
        d.DrawString(f"... {len(sizes) - len(rows)} more", Point2D(x0 + 60, 36 + 18 * len(rows)), rawCoords=True)
    d.FinishDrawing()
    return write_bytes_atomic(path, d.GetDrawingText())


def _layout(graph) -> np.ndarray:
    xyz = np.asarray(graph.positions, dtype=np.float64)
    xyz = xyz - xyz.mean(0)
    _, _, vt = np.linalg.svd(xyz, full_matrices=False)  # project on the two main axes
    return xyz @ vt[:2].T


def draw_graph_mapping(graph, labels, path, title: str | None = None) -> Path:
    """PNG of a structure's mapping (matplotlib projection on the two main axes), for drawable graphs with positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels, dtype=np.int64)
    xy = _layout(graph)
    cols = [PALETTE[b % len(PALETTE)] for b in labels]
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=120)
    for i, j in graph.edges.tolist():
        same = labels[i] == labels[j]
        ax.plot(xy[[i, j], 0], xy[[i, j], 1], color=cols[i] if same else "0.6", lw=3.0 if same else 1.0, zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], c=cols, s=150, edgecolors="k", linewidths=0.5, zorder=2)
    for i in range(graph.num_atoms):
        ax.text(xy[i, 0], xy[i, 1], str(labels[i]), ha="center", va="center", fontsize=6, zorder=3)
    sizes = _sizes(labels)
    handles = [plt.Line2D([], [], marker="o", ls="", color=PALETTE[b % len(PALETTE)],
                          label=f"bead {b}: {sizes[b]} atoms") for b in range(min(len(sizes), _LEGEND_ROWS))]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or f"{Path(graph.name).name}: {graph.num_atoms} heavy atoms -> {len(sizes)} beads", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return Path(path)


def draw_mapping(graph, labels, path, smiles: str | None = None) -> Path | None:
    """Draw a mapping when it can be read: RDKit for a SMILES, matplotlib for a small structure; else None."""
    if smiles is not None:
        return draw_smiles_mapping(smiles, labels, path)
    if graph.positions is None or not drawable(graph):
        return None
    return draw_graph_mapping(graph, labels, path)
