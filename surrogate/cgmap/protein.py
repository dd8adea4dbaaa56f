"""Residue-aware mappings of proteins: beads follow residues.

A model trained on small organic molecules does not know proteins, so for a protein the
residues set the frame: every residue gets one or more beads of its own, and a bead never
holds atoms of two residues (so never straddles a peptide bond), unless the caller asks for
fewer beads than residues with ``allow_cross_residue=True``; then consecutive residues are
grouped along the chain. Within a residue the atoms are split by the chosen method
(DSGPM affinity, spectral clustering of the bonds) restricted to the residue's atoms.
"""
from __future__ import annotations

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.cgmap.partition import enforce_connectivity, spectral_partition

__all__ = ["residue_groups", "allocate_beads", "map_by_residue", "relabel_by_first_atom"]


def relabel_by_first_atom(labels) -> np.ndarray:
    """Bead labels renumbered 0..k-1 in order of each bead's first atom (HAM's ``cgnodes`` order), int64 [n]."""
    seen: dict[int, int] = {}
    return np.array([seen.setdefault(int(x), len(seen)) for x in labels], dtype=np.int64)


def residue_groups(graph) -> list[np.ndarray]:
    """Atom indices of each residue (in order of first atom), from ``graph.residues['resindex']``."""
    if graph.residues is None:
        raise CGSurrogateError(f"{graph.name}: residue mode needs a structure file with residues")
    res = np.asarray(graph.residues["resindex"])
    _, first = np.unique(res, return_index=True)
    return [np.flatnonzero(res == res[i]) for i in sorted(first)]


def allocate_beads(sizes, n_beads: int) -> np.ndarray:
    """Beads per residue: at least 1, at most the residue's atom count, proportional to size (largest remainder).

    Parameters
    ----------
    sizes : int [R] atoms per residue
    n_beads : int, R <= n_beads <= sum(sizes)

    Returns
    -------
    int64 [R] summing to ``n_beads``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    r = len(sizes)
    if not r <= n_beads <= sizes.sum():
        raise CGSurrogateError(f"{n_beads} beads cannot cover {r} residues of {sizes.sum()} atoms with one or more "
                               f"beads per residue")
    out = np.ones(r, dtype=np.int64)
    while out.sum() < n_beads:  # give the next bead to the residue with the most atoms per bead
        room = np.where(out < sizes, sizes / out, -1.0)
        out[int(room.argmax())] += 1
    return out


def map_by_residue(graph, n_beads: int | None = None, beads_per_residue: int | None = None, affinity=None,
                   allow_cross_residue: bool = False, seed: int = 0) -> np.ndarray:
    """Residue-aware CG mapping.

    Parameters
    ----------
    graph : MolGraph from a structure file (``residues`` filled)
    n_beads : int, optional
        Total beads (>= number of residues, or any count with ``allow_cross_residue``).
    beads_per_residue : int, optional
        Instead of ``n_beads``: this many beads per residue (fewer for smaller residues).
    affinity : float [n, n], optional
        Bond affinity used inside residues (default: the plain adjacency).
    allow_cross_residue : bool
        Allow fewer beads than residues: consecutive residues are then grouped.
    seed : int

    Returns
    -------
    int64 [n] bead of each atom, beads numbered by their first atom.
    """
    groups = residue_groups(graph)
    r = len(groups)
    sizes = np.array([len(g) for g in groups])
    if (n_beads is None) == (beads_per_residue is None):
        raise CGSurrogateError("give exactly one of a bead count or beads per residue")
    if beads_per_residue is not None:
        if beads_per_residue < 1:
            raise CGSurrogateError(f"beads per residue must be >= 1, got {beads_per_residue}")
        counts = np.minimum(sizes, int(beads_per_residue))
    else:
        if isinstance(n_beads, bool) or not isinstance(n_beads, (int, np.integer)) or n_beads < 1:
            raise CGSurrogateError(f"number of beads must be a positive integer, got {n_beads!r}")
        if n_beads > graph.num_atoms:
            raise CGSurrogateError(f"cannot map {graph.num_atoms} atoms to {n_beads} beads: the bead count exceeds "
                                   f"the atom count")
        if n_beads < r:
            if not allow_cross_residue:
                raise CGSurrogateError(f"{n_beads} beads for {r} residues: a bead would straddle a peptide bond; "
                                       f"ask for at least {r} beads, or allow beads across residues")
            labels = np.empty(graph.num_atoms, dtype=np.int64)
            bounds = np.searchsorted(np.cumsum(sizes), np.linspace(0, sizes.sum(), n_beads + 1)[1:-1], side="right")
            for k, chunk in enumerate(np.split(np.arange(r), bounds)):
                for i in chunk:
                    labels[groups[i]] = k
            return relabel_by_first_atom(labels)
        counts = allocate_beads(sizes, int(n_beads))
    aff = graph.adjacency() if affinity is None else np.asarray(affinity)
    labels = np.empty(graph.num_atoms, dtype=np.int64)
    offset = 0
    for atoms_r, k in zip(groups, counts.tolist()):
        sub = aff[np.ix_(atoms_r, atoms_r)]
        local = {int(a): i for i, a in enumerate(atoms_r)}
        sub_edges = np.array([(local[i], local[j]) for i, j in graph.edges.tolist() if i in local and j in local],
                             dtype=np.int64).reshape(-1, 2)
        n_frag_ok = k
        lab = spectral_partition(sub, k, seed=seed) if k > 1 else np.zeros(len(atoms_r), dtype=np.int64)
        try:
            lab = enforce_connectivity(lab, sub_edges, n_frag_ok, affinity=sub)
        except CGSurrogateError:  # a residue in several pieces (missing atoms): keep its pieces as beads
            lab = enforce_connectivity(lab, sub_edges, None, affinity=sub)
        labels[atoms_r] = lab + offset
        offset += int(lab.max()) + 1
    return relabel_by_first_atom(labels)
