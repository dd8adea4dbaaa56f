"""Heavy-atom molecular graphs: the input of learned coarse-grained mappings (DSGPM).

A :class:`MolGraph` holds the heavy atoms of one molecule (element symbols), its bonds
(pairs of atom indices) and their bond types (1.0 single, 1.5 aromatic, 2.0 double,
3.0 triple, as in the HAM dataset). It is built from a HAM annotation file (see
:mod:`cgsurrogate.data.ham`), from a SMILES string (RDKit) or from a structure file read by
MDAnalysis (e.g. a protein PDB/PSF). Node features follow Li et al. 2020, sec. 3.3:
element one-hot, degree, and a cycle indicator from ``networkx.cycle_basis``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Element vocabulary of the atom-type one-hot; anything else maps to ``"other"``.
ELEMENTS: tuple[str, ...] = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P", "Si", "B", "Se", "other")
#: Bond types in the order of the bond one-hot.
BOND_TYPES: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)


def element_index(symbol: str) -> int:
    """Index of an element symbol in :data:`ELEMENTS` (``"other"`` for unknown ones)."""
    sym = symbol.strip()
    if len(sym) > 1:
        sym = sym[0].upper() + sym[1:].lower()
    else:
        sym = sym.upper()
    try:
        return ELEMENTS.index(sym)
    except ValueError:
        return ELEMENTS.index("other")


def bond_type_index(bond_type: float) -> int:
    """Index of a bond order (1.0, 1.5, 2.0, 3.0) in :data:`BOND_TYPES`; other orders raise ValueError."""
    for i, b in enumerate(BOND_TYPES):
        if abs(float(bond_type) - b) < 1e-6:
            return i
    raise ValueError(f"unknown bond type {bond_type!r}; expected one of {BOND_TYPES}")


@dataclass
class MolGraph:
    """Heavy-atom graph of one molecule.

    Attributes
    ----------
    elements : list of str, length n
        Element symbol of each heavy atom.
    edges : ndarray of int64, shape [E, 2]
        Bonded atom pairs, each stored once with ``i < j``.
    bond_types : ndarray of float64, shape [E]
        Bond order of each edge (1.0, 1.5, 2.0, 3.0).
    name : str
        SMILES or file name the graph came from.
    positions : ndarray of float64, shape [n, 3], optional
        Atom positions: Angstrom as read from a structure file, or RDKit 2D depiction
        coordinates for a SMILES; used for drawing.
    """

    elements: list
    edges: np.ndarray
    bond_types: np.ndarray
    name: str = ""
    positions: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        n = len(self.elements)
        e = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if e.size and (e.min() < 0 or e.max() >= n):
            raise ValueError(f"{self.name or 'molecule'}: bond refers to an atom outside 0..{n - 1}")
        e = np.sort(e, axis=1)
        if np.any(e[:, 0] == e[:, 1]):
            raise ValueError(f"{self.name or 'molecule'}: self-bond in the bond list")
        self.edges = e
        self.bond_types = np.asarray(self.bond_types, dtype=np.float64).reshape(-1)
        if len(self.bond_types) != len(e):
            raise ValueError(f"{self.name or 'molecule'}: {len(e)} bonds but {len(self.bond_types)} bond types")

    @property
    def num_atoms(self) -> int:
        """Number of heavy atoms n."""
        return len(self.elements)

    @property
    def num_bonds(self) -> int:
        """Number of bonds E."""
        return len(self.edges)

    def atom_types(self) -> np.ndarray:
        """Element indices into :data:`ELEMENTS`, int64 [n]."""
        return np.array([element_index(s) for s in self.elements], dtype=np.int64)

    def bond_type_indices(self) -> np.ndarray:
        """Bond-type indices into :data:`BOND_TYPES`, int64 [E]."""
        return np.array([bond_type_index(b) for b in self.bond_types], dtype=np.int64)

    def adjacency(self) -> np.ndarray:
        """Dense symmetric 0/1 adjacency, float64 [n, n]."""
        n = self.num_atoms
        a = np.zeros((n, n))
        if self.num_bonds:
            a[self.edges[:, 0], self.edges[:, 1]] = 1.0
            a[self.edges[:, 1], self.edges[:, 0]] = 1.0
        return a

    def nx_graph(self):
        """networkx.Graph with node attribute ``element`` and edge attribute ``bondtype``."""
        import networkx as nx

        g = nx.Graph()
        for i, el in enumerate(self.elements):
            g.add_node(i, element=el)
        for (i, j), b in zip(self.edges.tolist(), self.bond_types.tolist()):
            g.add_edge(i, j, bondtype=b)
        return g

    def degree(self) -> np.ndarray:
        """Number of heavy-atom neighbours of each atom, float64 [n]."""
        d = np.zeros(self.num_atoms)
        np.add.at(d, self.edges.reshape(-1), 1.0)
        return d

    def in_cycle(self) -> np.ndarray:
        """Cycle indicator (1.0 if the atom lies on a cycle of ``networkx.cycle_basis``), float64 [n]."""
        if "in_cycle" not in self._cache:
            import networkx as nx

            c = np.zeros(self.num_atoms)
            for cyc in nx.cycle_basis(self.nx_graph()):
                c[list(cyc)] = 1.0
            self._cache["in_cycle"] = c
        return self._cache["in_cycle"]

    def atom_onehot(self) -> np.ndarray:
        """Element one-hot, float64 [n, len(ELEMENTS)]."""
        out = np.zeros((self.num_atoms, len(ELEMENTS)))
        out[np.arange(self.num_atoms), self.atom_types()] = 1.0
        return out

    def bond_onehot(self) -> np.ndarray:
        """Bond-type one-hot, float64 [E, 4] (single, aromatic, double, triple)."""
        out = np.zeros((self.num_bonds, len(BOND_TYPES)))
        out[np.arange(self.num_bonds), self.bond_type_indices()] = 1.0
        return out

    def connected_components(self) -> int:
        """Number of connected components of the bond graph."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = self.num_atoms
        m = coo_matrix((np.ones(self.num_bonds), (self.edges[:, 0], self.edges[:, 1])), shape=(n, n))
        return int(connected_components(m, directed=False)[0])


def mol_graph_from_smiles(smiles: str) -> MolGraph:
    """Heavy-atom graph of a SMILES string, built with RDKit.

    Parameters
    ----------
    smiles : str
        The molecule. Hydrogens are dropped; aromatic bonds get order 1.5.

    Returns
    -------
    MolGraph
        With ``positions`` the RDKit 2D depiction coordinates (z = 0), used for drawing.

    Raises
    ------
    ValueError
        When RDKit cannot parse the SMILES or the molecule has no heavy atom.
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    mol = Chem.RemoveHs(mol)
    if mol.GetNumAtoms() == 0:
        raise ValueError(f"SMILES {smiles!r} has no heavy atom")
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    edges, types = [], []
    for b in mol.GetBonds():
        order = b.GetBondTypeAsDouble()
        if order not in BOND_TYPES:  # dative/unspecified bonds: count as single
            order = 1.0
        edges.append((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
        types.append(order)
    from rdkit.Chem import rdDepictor

    rdDepictor.Compute2DCoords(mol)
    xy = mol.GetConformer().GetPositions()
    return MolGraph(elements, np.array(edges, dtype=np.int64).reshape(-1, 2), np.array(types), name=smiles,
                    positions=np.asarray(xy, dtype=np.float64))


def mol_graph_from_structure(path, selection: str = "not element H and not name H*") -> MolGraph:
    """Heavy-atom graph of a structure file read by MDAnalysis (PDB, PSF, GRO, ...).

    Bonds come from the topology when it has them (PSF, PDB CONECT), otherwise they are
    guessed from distances (``guess_bonds``). All bonds get order 1.0: structure files
    carry no bond orders.

    Parameters
    ----------
    path : str or Path or tuple
        File readable by ``MDAnalysis.Universe``; a tuple ``(topology, coordinates)`` is passed through.
    selection : str
        MDAnalysis selection of the atoms to keep (default: every non-hydrogen atom).

    Returns
    -------
    MolGraph
        With ``positions`` in Angstrom.
    """
    import warnings

    import MDAnalysis as mda

    files = path if isinstance(path, (tuple, list)) else (path,)
    for f in files:
        if not Path(f).exists():
            raise FileNotFoundError(f"{f}: no such structure file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u = mda.Universe(*[str(f) for f in files])
        except Exception as exc:  # MDAnalysis raises many types for unreadable files
            raise ValueError(f"{files[0]}: MDAnalysis cannot read it ({exc})") from exc
        try:
            atoms = u.select_atoms(selection)
        except Exception as exc:
            raise ValueError(f"{files[0]}: bad selection {selection!r} ({exc})") from exc
        if len(atoms) == 0:
            raise ValueError(f"{files[0]}: selection {selection!r} matched no atom")
        if not hasattr(u, "bonds") or len(u.bonds) == 0:
            u.atoms.guess_bonds()
    index = {a.ix: k for k, a in enumerate(atoms)}
    edges = set()
    for b in u.bonds:
        i, j = b.atoms[0].ix, b.atoms[1].ix
        if i in index and j in index:
            edges.add(tuple(sorted((index[i], index[j]))))
    edges = np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
    try:
        elements = [str(e) for e in atoms.elements]
    except Exception:
        elements = []
    if not elements or any(not e for e in elements):
        elements = [a.name.lstrip("0123456789")[:1] for a in atoms]
    try:
        positions = np.asarray(atoms.positions, dtype=np.float64)
    except Exception:  # topology-only files (PSF) carry no coordinates
        positions = None
    return MolGraph(elements, edges, np.ones(len(edges)), name=str(files[0]), positions=positions)


def mapping_to_ham_json(graph: MolGraph, labels) -> dict:
    """A mapping (bead index per atom) as a dict in HAM's annotation format.

    Parameters
    ----------
    graph : MolGraph
    labels : array-like of int, shape [n]
        Bead index of each atom (any integers; relabelled to 0..k-1 in order of first appearance).

    Returns
    -------
    dict
        Keys ``smiles``, ``nodes`` ({id, element, cg}), ``edges`` ({source, target, bondtype}), ``cgnodes``.
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != graph.num_atoms:
        raise ValueError(f"mapping has {len(labels)} labels for {graph.num_atoms} atoms")
    remap: dict[int, int] = {}
    cg = [remap.setdefault(int(l), len(remap)) for l in labels]
    beads = [[] for _ in range(len(remap))]
    for i, b in enumerate(cg):
        beads[b].append(i)
    return {
        "smiles": graph.name,
        "nodes": [{"id": i, "element": el, "cg": cg[i]} for i, el in enumerate(graph.elements)],
        "edges": [{"source": int(i), "target": int(j), "bondtype": float(b)}
                  for (i, j), b in zip(graph.edges.tolist(), graph.bond_types.tolist())],
        "cgnodes": beads,
    }


def write_mapping_json(path, graph: MolGraph, labels) -> Path:
    """Write a mapping in HAM's JSON format, atomically (temporary name + ``os.replace``).

    Parameters
    ----------
    path : str or Path
        Output file.
    graph : MolGraph
    labels : array-like of int, shape [n]

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(mapping_to_ham_json(graph, labels), fh, indent=1)
    os.replace(tmp, path)
    return path
