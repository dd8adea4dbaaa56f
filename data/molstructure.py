"""Heavy-atom graphs of structure files (proteins and other large molecules) read by MDAnalysis.

Structure files carry no bond orders (every bond is single) and often no elements: a PSF
has names, types and masses but no element field. Elements then come from the masses
(nearest standard atomic mass within 0.6 amu) and, without masses, from the atom names
(first letter, or a two-letter symbol the name starts with). Bonds come from the topology
(PSF, PDB CONECT) or are guessed from distances. Residue records (resid, resname, segid,
atom names, peptide bonds) travel with the graph for the residue-aware protein mapping.
Positions are in Angstrom (MDAnalysis' unit), as read.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.data.molgraph import MolGraph

__all__ = ["read_structure", "mol_graph_from_structure", "infer_elements", "guess_heavy_bonds", "STANDARD_MASSES",
           "COVALENT_RADII"]

#: Standard atomic masses (amu) used to recover elements from masses.
STANDARD_MASSES = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "Na": 22.990, "Mg": 24.305,
                   "P": 30.974, "S": 32.06, "Cl": 35.45, "K": 39.098, "Ca": 40.078, "Mn": 54.938, "Fe": 55.845,
                   "Co": 58.933, "Ni": 58.693, "Cu": 63.546, "Zn": 65.38, "Se": 78.971, "Br": 79.904, "I": 126.904}
_TWO_LETTER = ("CL", "BR", "NA", "MG", "ZN", "FE", "CA", "MN", "CU", "CO", "NI", "SE")


def _element_from_name(name: str) -> str:
    s = name.strip().lstrip("0123456789").upper()
    if not s:
        return "X"
    if s[:2] in _TWO_LETTER and s[:2] not in ("CA",):  # CA is C-alpha in proteins, not calcium
        return s[0] + s[1].lower()
    return s[0]


def infer_elements(atoms) -> tuple[list[str], str]:
    """Element symbol of each atom of an MDAnalysis AtomGroup, and where they came from.

    Returns
    -------
    (list of str, one of "elements", "masses", "names")
    """
    try:
        el = [str(e).strip() for e in atoms.elements]
        if el and all(el):
            return [e[0].upper() + e[1:].lower() for e in el], "elements"
    except (AttributeError, Exception):  # noqa: B014 - MDAnalysis raises NoDataError (an AttributeError) or others
        pass
    try:
        masses = np.asarray(atoms.masses, dtype=np.float64)
        if len(masses) and np.all(masses > 0.5):
            symbols = list(STANDARD_MASSES)
            ref = np.array([STANDARD_MASSES[s] for s in symbols])
            idx = np.abs(masses[:, None] - ref[None, :]).argmin(1)
            close = np.abs(masses - ref[idx]) < 0.6
            names = [str(n) for n in atoms.names]
            return [symbols[i] if ok else _element_from_name(nm) for i, ok, nm in zip(idx, close, names)], "masses"
    except (AttributeError, Exception):  # noqa: B014
        pass
    return [_element_from_name(str(n)) for n in atoms.names], "names"


#: Covalent radii (Angstrom) for bond guessing; others get 1.5.
COVALENT_RADII = {"C": 0.76, "N": 0.71, "O": 0.66, "S": 1.05, "P": 1.07, "F": 0.57, "Cl": 1.02, "Br": 1.20,
                  "I": 1.39, "Se": 1.20, "B": 0.84, "Si": 1.11}


def guess_heavy_bonds(positions: np.ndarray, elements, tolerance: float = 1.2) -> np.ndarray:
    """Bonds between heavy atoms closer than ``tolerance`` x the sum of covalent radii, int64 [E, 2] (i < j).

    Parameters
    ----------
    positions : float [n, 3] Angstrom
    elements : list of str
    """
    from scipy.spatial import cKDTree

    rad = np.array([COVALENT_RADII.get(e, 1.5) for e in elements])
    pairs = cKDTree(positions).query_pairs(r=tolerance * 2 * rad.max(), output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
    keep = d < tolerance * (rad[pairs[:, 0]] + rad[pairs[:, 1]])
    return np.unique(np.sort(pairs[keep], axis=1), axis=0).astype(np.int64)


def read_structure(path, selection: str | None = None):
    """Read a structure; return ``(MolGraph, AtomGroup)`` of its selected heavy atoms.

    Parameters
    ----------
    path : str or Path, or (topology, coordinates)
        Anything ``MDAnalysis.Universe`` reads (PDB, GRO, PSF + DCD/CRD, ...).
    selection : str, optional
        MDAnalysis selection; hydrogens (by inferred element) are always dropped.

    Returns
    -------
    graph : MolGraph (positions in Angstrom or None without coordinates; ``residues`` filled)
    atoms : MDAnalysis AtomGroup, same order as the graph's atoms

    Raises
    ------
    InputFileError / CGSurrogateError
        Missing or unreadable file; a selection that is invalid or matches no heavy atom.
    """
    import MDAnalysis as mda

    files = tuple(path) if isinstance(path, (tuple, list)) else (path,)
    files = tuple(f for f in files if f is not None)
    for f in files:
        if not Path(f).is_file():
            raise InputFileError(f"{f}: no such structure file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u = mda.Universe(*[str(f) for f in files])
        except Exception as exc:  # MDAnalysis raises many types for unreadable files
            raise InputFileError(f"{files[0]}: MDAnalysis cannot read it ({type(exc).__name__}: {exc})") from None
        try:
            atoms = u.select_atoms(selection) if selection else u.atoms
        except Exception as exc:
            raise CGSurrogateError(f"{files[0]}: bad selection {selection!r} ({exc})") from None
        elements, source = infer_elements(atoms)
        heavy = np.array([e != "H" for e in elements])
        atoms = atoms[heavy]
        elements = [e for e, h in zip(elements, heavy) if h]
        if len(atoms) == 0:
            raise CGSurrogateError(f"{files[0]}: selection {selection!r} matched no heavy atom")
        has_bonds = hasattr(u, "bonds") and len(u.bonds) > 0
    if has_bonds:
        index = np.full(len(u.atoms), -1, dtype=np.int64)
        index[atoms.ix] = np.arange(len(atoms))
        mapped = index[np.asarray(u.bonds.indices, dtype=np.int64).reshape(-1, 2)]
        edges = np.unique(np.sort(mapped[(mapped >= 0).all(1)], axis=1), axis=0).reshape(-1, 2)
    else:
        edges = guess_heavy_bonds(np.asarray(atoms.positions, dtype=np.float64), elements)
    positions = None
    if hasattr(u, "trajectory") and len(u.trajectory):
        try:
            positions = np.asarray(atoms.positions, dtype=np.float64)
        except Exception:  # topology-only files carry no coordinates
            positions = None
    names = [str(n) for n in atoms.names]
    resid = np.asarray(atoms.resids, dtype=np.int64)
    resindex = np.asarray(atoms.resindices, dtype=np.int64)
    pep = np.array([resindex[i] != resindex[j] and {names[i], names[j]} == {"C", "N"} for i, j in edges.tolist()],
                   dtype=bool)
    residues = dict(resid=resid, resindex=resindex, resname=[str(r) for r in atoms.resnames],
                    segid=[str(s) for s in atoms.segids], atom_name=names, peptide=pep, element_source=source)
    graph = MolGraph(elements, edges, np.ones(len(edges)), name=str(files[0]), positions=positions,
                     residues=residues)
    return graph, atoms


def mol_graph_from_structure(path, selection: str | None = None) -> MolGraph:
    """Heavy-atom graph of a structure file (see :func:`read_structure`)."""
    return read_structure(path, selection)[0]
