"""Files of a structure's CG mapping that molecular viewers open (VMD, PyMOL, OVITO).

* :func:`write_bead_pdb`: the mapped atoms with the bead index in the B-factor column
  (colour by Beta / ``spectrum b``); PDB's B-factor field holds 999.99 at most, so a
  mapping of 1000 beads or more is refused there.
* :func:`write_cg_pdb`: one pseudo-atom per bead at its centre of mass (Angstrom), residue
  name and chain of the bead's first atom, residue number = bead index + 1, B-factor = bead
  index, CONECT records between beads that share a bond.
* :func:`residue_table`: one line per residue: segment, residue number and name, its beads
  and their atom counts (tab-separated).
"""
from __future__ import annotations

import warnings

import numpy as np

from cgsurrogate.core.atomic import atomic_path, write_text_atomic
from cgsurrogate.core.errors import CGSurrogateError

__all__ = ["write_bead_pdb", "bead_centres", "write_cg_pdb", "residue_table", "write_residue_table", "MAX_PDB_BEADS"]

#: Largest bead index the PDB B-factor field (%6.2f) holds, plus one.
MAX_PDB_BEADS = 1000


def _check(labels, atoms):
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(atoms):
        raise CGSurrogateError(f"{len(labels)} bead labels for {len(atoms)} atoms")
    return labels


def write_bead_pdb(path, atoms, labels):
    """PDB of ``atoms`` (MDAnalysis AtomGroup with positions) with B-factor = bead index of each atom."""
    labels = _check(labels, atoms)
    if labels.max() >= MAX_PDB_BEADS:
        raise CGSurrogateError(f"{path}: {labels.max() + 1} beads do not fit PDB's B-factor column (max {MAX_PDB_BEADS})")
    u = atoms.universe
    if not hasattr(u.atoms, "tempfactors"):
        u.add_TopologyAttr("tempfactors")
    atoms.tempfactors = labels.astype(np.float64)
    with warnings.catch_warnings(), atomic_path(path, suffix=".pdb") as tmp:
        warnings.simplefilter("ignore")
        atoms.write(str(tmp), bonds=None)
    return path


def bead_centres(positions, labels, masses=None) -> np.ndarray:
    """Centre of mass of each bead, float64 [k, 3] (equal weights without masses)."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    w = np.ones(len(labels)) if masses is None else np.asarray(masses, dtype=np.float64)
    tot = np.zeros(k)
    np.add.at(tot, labels, w)
    c = np.zeros((k, 3))
    np.add.at(c, labels, np.asarray(positions, dtype=np.float64) * w[:, None])
    return c / tot[:, None]


def write_cg_pdb(path, graph, atoms, labels):
    """PDB with one pseudo-atom (name ``CG``, element C) per bead at its centre of mass, bonded beads CONECTed."""
    import MDAnalysis as mda

    labels = _check(labels, atoms)
    k = int(labels.max()) + 1
    if k > 99999:
        raise CGSurrogateError(f"{path}: {k} beads are more than a PDB file numbers")
    try:
        masses = np.asarray(atoms.masses, dtype=np.float64)
    except Exception:
        masses = None
    centres = bead_centres(atoms.positions, labels, masses)
    first = np.array([np.flatnonzero(labels == b)[0] for b in range(k)])
    u = mda.Universe.empty(k, n_residues=k, atom_resindex=np.arange(k), residue_segindex=np.zeros(k, dtype=int),
                           trajectory=True)
    u.add_TopologyAttr("names", ["CG"] * k)
    u.add_TopologyAttr("elements", ["C"] * k)
    u.add_TopologyAttr("resnames", [str(atoms.resnames[i]) for i in first])
    u.add_TopologyAttr("resids", np.arange(1, k + 1))
    u.add_TopologyAttr("tempfactors", np.arange(k, dtype=np.float64))
    try:
        chains = [str(c)[:1] or "A" for c in atoms.segids[first]]
    except Exception:
        chains = ["A"] * k
    u.add_TopologyAttr("chainIDs", chains)
    bonds = {tuple(sorted((int(labels[i]), int(labels[j])))) for i, j in graph.edges.tolist() if labels[i] != labels[j]}
    if bonds:
        u.add_TopologyAttr("bonds", sorted(bonds))
    u.atoms.positions = centres
    with warnings.catch_warnings(), atomic_path(path, suffix=".pdb") as tmp:
        warnings.simplefilter("ignore")
        u.atoms.write(str(tmp))
    return path


def residue_table(graph, labels) -> str:
    """Residue-to-bead table (tab-separated text): segid, resid, resname, beads, atoms per bead."""
    labels = np.asarray(labels, dtype=np.int64)
    res = graph.residues
    lines = ["segid\tresid\tresname\tbeads\tatoms_per_bead"]
    order = np.unique(np.asarray(res["resindex"]), return_index=True)[1]
    for i in sorted(order):
        members = np.flatnonzero(np.asarray(res["resindex"]) == res["resindex"][i])
        beads, counts = np.unique(labels[members], return_counts=True)
        lines.append(f"{res['segid'][i]}\t{res['resid'][i]}\t{res['resname'][i]}\t"
                     f"{','.join(map(str, beads))}\t{','.join(map(str, counts))}")
    return "\n".join(lines) + "\n"


def write_residue_table(path, graph, labels):
    """Write :func:`residue_table` atomically."""
    return write_text_atomic(path, residue_table(graph, labels))
