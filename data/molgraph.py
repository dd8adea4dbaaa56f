"""Heavy-atom molecular graphs: the input of learned coarse-grained mappings (DSGPM).

A :class:`MolGraph` holds the heavy atoms of one molecule (element symbols), its bonds
(pairs of atom indices) and their bond types (1.0 single, 1.5 aromatic, 2.0 double,
3.0 triple, as in the HAM dataset). It is built from a HAM annotation file (see
:mod:`cgsurrogate.data.ham`), from a SMILES string (RDKit) or from a structure file read by
MDAnalysis (e.g. a protein PDB/PSF). Node features follow Li et al. 2020, sec. 3.3:
element one-hot, degree, and a cycle indicator from ``networkx.cycle_basis``.

Chemistry beyond the bond graph (aromaticity, hybridisation, formal charge, hydrogens,
ring sizes; RDKit's bond orders, conjugation and ring membership) is taken from RDKit for
every molecule that has a SMILES, whatever the input: :func:`mol_graph_from_smiles` reads
it from the parsed SMILES, and :func:`cgsurrogate.data.ham.load_ham_file` parses the file's
SMILES and matches RDKit's atoms to the file's atom indices (:func:`attach_rdkit_chemistry`).
So a molecule given as SMILES and the same molecule given as a HAM JSON file carry the same
chemistry arrays, even where the file's own bond orders disagree with RDKit's (12 % of
HAM bonds). Graphs of structure files (:mod:`cgsurrogate.data.molstructure`) have none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Element vocabulary of the atom-type one-hot; anything else maps to ``"other"``.
ELEMENTS: tuple[str, ...] = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P", "Si", "B", "Se", "other")
#: Bond types in the order of the bond one-hot.
BOND_TYPES: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
#: Columns of :attr:`MolGraph.atom_chem`.
ATOM_CHEM_COLUMNS = ("aromatic", "hybridisation", "formal_charge", "total_hs", "ring_sizes")
#: Hybridisation codes of column 1 of :attr:`MolGraph.atom_chem`.
HYBRIDISATIONS = ("SP", "SP2", "SP3", "other")
#: Ring sizes recorded in the bit mask of column 4 (bit k: the atom lies on a smallest ring of size RING_SIZES[k]; 7 = 7 or more).
RING_SIZES = (3, 4, 5, 6, 7)
#: Columns of :attr:`MolGraph.bond_chem`.
BOND_CHEM_COLUMNS = ("rdkit_bond_type", "conjugated", "in_ring")


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
    atom_chem : ndarray of int64, shape [n, 5], optional
        RDKit chemistry per atom, columns :data:`ATOM_CHEM_COLUMNS`: aromatic 0/1,
        hybridisation index into :data:`HYBRIDISATIONS`, formal charge (e), number of
        hydrogens, bit mask of the ring sizes :data:`RING_SIZES` the atom lies on. None
        when the graph has no SMILES (structure files).
    bond_chem : ndarray of int64, shape [E, 3], optional
        RDKit chemistry per bond (same order as ``edges``), columns :data:`BOND_CHEM_COLUMNS`:
        RDKit's bond order as an index into :data:`BOND_TYPES`, conjugated 0/1, in a ring 0/1.
    residues : dict, optional
        Structure files only: ``resid`` int64 [n], ``resname`` list, ``segid`` list,
        ``atom_name`` list, ``peptide`` bool [E] (the bond is a peptide C-N bond).
    """

    elements: list
    edges: np.ndarray
    bond_types: np.ndarray
    name: str = ""
    positions: np.ndarray | None = None
    atom_chem: np.ndarray | None = None
    bond_chem: np.ndarray | None = None
    residues: dict | None = None
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
        if self.atom_chem is not None and self.atom_chem.shape != (n, len(ATOM_CHEM_COLUMNS)):
            raise ValueError(f"{self.name or 'molecule'}: atom_chem has shape {self.atom_chem.shape}")
        if self.bond_chem is not None and self.bond_chem.shape != (len(e), len(BOND_CHEM_COLUMNS)):
            raise ValueError(f"{self.name or 'molecule'}: bond_chem has shape {self.bond_chem.shape}")

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
        from cgsurrogate.core.errors import require_extra

        nx = require_extra("networkx", "cgmap", "molecular graph algorithms")

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
        """Cycle indicator (1.0 if the atom lies on a cycle of the bond graph), float64 [n].

        An atom lies on a cycle iff one of its bonds is not a bridge (the same atoms as the
        union of ``networkx.cycle_basis``); bridges by an iterative depth-first search.
        """
        if "in_cycle" not in self._cache:
            self._cache["in_cycle"] = _atoms_on_cycles(self.num_atoms, self.edges)
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


def _atoms_on_cycles(n: int, edges: np.ndarray) -> np.ndarray:
    nbr: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (i, j) in enumerate(edges.tolist()):
        nbr[i].append((j, k))
        nbr[j].append((i, k))
    disc, low = [-1] * n, [0] * n
    bridge = np.zeros(len(edges), dtype=bool)
    t = 0
    for root in range(n):
        if disc[root] >= 0:
            continue
        disc[root] = low[root] = t
        t += 1
        stack = [(root, -1, iter(nbr[root]))]
        while stack:
            u, via, it = stack[-1]
            for v, k in it:
                if k == via:
                    continue
                if disc[v] < 0:
                    disc[v] = low[v] = t
                    t += 1
                    stack.append((v, k, iter(nbr[v])))
                    break
                low[u] = min(low[u], disc[v])
            else:
                stack.pop()
                if stack:
                    p = stack[-1][0]
                    low[p] = min(low[p], low[u])
                    if low[u] > disc[p]:
                        bridge[via] = True
    out = np.zeros(n)
    ring = edges[~bridge]
    out[ring.reshape(-1)] = 1.0
    return out


def mol_graph_from_smiles(smiles: str) -> MolGraph:
    """Heavy-atom graph of a SMILES string; see :func:`cgsurrogate.data.molchem.mol_graph_from_smiles`."""
    from cgsurrogate.data.molchem import mol_graph_from_smiles as build

    return build(smiles)


def attach_rdkit_chemistry(graph: MolGraph, smiles: str | None = None) -> bool:
    """Fill the graph's RDKit chemistry arrays; see :func:`cgsurrogate.data.molchem.attach_rdkit_chemistry`."""
    from cgsurrogate.data.molchem import attach_rdkit_chemistry as attach

    return attach(graph, smiles)


def mol_graph_from_structure(path, selection: str = "not element H and not name H*", **kwargs) -> MolGraph:
    """Heavy-atom graph of a structure file; see :func:`cgsurrogate.data.molstructure.mol_graph_from_structure`."""
    from cgsurrogate.data.molstructure import mol_graph_from_structure as read

    return read(path, selection, **kwargs)


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
    """Write a mapping in HAM's JSON format, atomically.

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
    from cgsurrogate.core.atomic import write_json_atomic

    return write_json_atomic(path, mapping_to_ham_json(graph, labels), indent=1)
