"""RDKit chemistry of molecular graphs: SMILES parsing, atom and bond chemistry arrays, and the
matching of RDKit's atoms to another numbering (a HAM file's), so that a molecule given as
SMILES and the same molecule given as a HAM JSON file carry the same chemistry
(see :mod:`cgsurrogate.data.molgraph`)."""
from __future__ import annotations

import numpy as np

from cgsurrogate.data.molgraph import ATOM_CHEM_COLUMNS, BOND_CHEM_COLUMNS, BOND_TYPES, RING_SIZES, MolGraph, \
    bond_type_index

__all__ = ["parse_smiles", "rdkit_chemistry", "attach_rdkit_chemistry", "mol_graph_from_smiles"]


def _rdkit():
    from cgsurrogate.core.errors import require_extra

    chem = require_extra("rdkit.Chem", "cgmap", "reading SMILES")
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    return chem


def parse_smiles(smiles: str):
    """RDKit molecule of a SMILES string, hydrogens removed.

    Raises
    ------
    CGSurrogateError
        When RDKit cannot parse it or it has no heavy atom (message quotes the SMILES).
    """
    from cgsurrogate.core.errors import CGSurrogateError

    chem = _rdkit()
    mol = chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
    if mol is None:
        raise CGSurrogateError(f"RDKit cannot parse the SMILES {smiles!r}")
    mol = chem.RemoveHs(mol)
    if mol.GetNumAtoms() == 0:
        raise CGSurrogateError(f"SMILES {smiles!r} has no heavy atom")
    return mol


def _rdkit_order(bond) -> float:
    order = bond.GetBondTypeAsDouble()
    return order if order in BOND_TYPES else 1.0  # dative/unspecified bonds count as single


def rdkit_chemistry(mol, edges=None, atom_index=None, bond_types=None) -> tuple[np.ndarray, np.ndarray]:
    """Atom and bond chemistry arrays (:attr:`MolGraph.atom_chem`, :attr:`MolGraph.bond_chem`) of an RDKit molecule.

    Parameters
    ----------
    mol : rdkit.Chem.Mol  (hydrogens removed)
    edges : int [E, 2], optional
        Bonds in the graph's atom numbering; default: RDKit's bonds in RDKit's order.
    atom_index : int [n], optional
        RDKit atom index of each graph atom; default: the identity.
    bond_types : float [E], optional
        The graph's own bond orders, used only for a bond RDKit does not have (e.g. a HAM
        file bonding a counter-ion): row (order, 0, 0).

    Returns
    -------
    atom_chem int64 [n, 5], bond_chem int64 [E, 3]
    """
    n_rd = mol.GetNumAtoms()
    atom_index = np.arange(n_rd) if atom_index is None else np.asarray(atom_index, dtype=np.int64)
    ring_info = mol.GetRingInfo()
    hyb = {"SP": 0, "SP2": 1, "SP3": 2}
    atom_chem = np.zeros((len(atom_index), len(ATOM_CHEM_COLUMNS)), dtype=np.int64)
    for k, r in enumerate(atom_index.tolist()):
        a = mol.GetAtomWithIdx(int(r))
        mask = 0
        for b, size in enumerate(RING_SIZES):
            if (ring_info.IsAtomInRingOfSize(int(r), size) if size < 7
                    else any(len(ring) >= 7 and r in ring for ring in ring_info.AtomRings())):
                mask |= 1 << b
        atom_chem[k] = (int(a.GetIsAromatic()), hyb.get(str(a.GetHybridization()), 3), a.GetFormalCharge(),
                        a.GetTotalNumHs(), mask)
    if edges is None:
        edges = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()],
                         dtype=np.int64).reshape(-1, 2)
    bond_chem = np.zeros((len(edges), len(BOND_CHEM_COLUMNS)), dtype=np.int64)
    for k, (i, j) in enumerate(np.asarray(edges).tolist()):
        b = mol.GetBondBetweenAtoms(int(atom_index[i]), int(atom_index[j]))
        if b is None:
            if bond_types is None:
                raise ValueError(f"no RDKit bond between atoms {i} and {j}")
            bond_chem[k] = (bond_type_index(bond_types[k]), 0, 0)
            continue
        bond_chem[k] = (bond_type_index(_rdkit_order(b)), int(b.GetIsConjugated()), int(b.IsInRing()))
    return atom_chem, bond_chem


def _match_atoms(mol, elements, edges, bond_types=None, max_tries: int = 64) -> np.ndarray | None:
    """RDKit atom index of each graph atom, or None when the graph is not part of ``mol``.

    The identity when it fits; else an element-preserving subgraph isomorphism of the bond
    graph. Where several exist (symmetric groups such as a carboxylate), the one whose RDKit
    bond orders agree best with the graph's own ``bond_types`` is taken (first ``max_tries``).
    """
    n = len(elements)
    rd_el = [a.GetSymbol() for a in mol.GetAtoms()]
    rd_edges = {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds()}
    ours = [tuple(sorted(e)) for e in np.asarray(edges).tolist()]
    if (n <= len(rd_el) and rd_el[:n] == list(elements) and set(ours) <= rd_edges) or \
            (rd_el == list(elements) and not set(ours) <= rd_edges and len(set(ours) - rd_edges) == 1):
        return np.arange(n)  # same numbering (the second case: a file bonding one counter-ion)
    from cgsurrogate.core.errors import require_extra

    nx = require_extra("networkx", "cgmap", "matching a molecule's atoms to RDKit's")
    from itertools import islice

    from networkx.algorithms.isomorphism import GraphMatcher, categorical_node_match

    g_rd, g = nx.Graph(), nx.Graph()
    g_rd.add_nodes_from((i, {"el": e}) for i, e in enumerate(rd_el))
    g_rd.add_edges_from(rd_edges)
    g.add_nodes_from((i, {"el": e}) for i, e in enumerate(elements))
    g.add_edges_from(ours)
    gm = GraphMatcher(g_rd, g, node_match=categorical_node_match("el", None))
    best, best_agree = None, -1
    for m in islice(gm.subgraph_isomorphisms_iter(), max_tries):  # maps RDKit atom -> graph atom
        inv = np.empty(n, dtype=np.int64)
        for r, i in m.items():
            inv[i] = r
        if bond_types is None:
            return inv
        agree = sum(abs(_rdkit_order(mol.GetBondBetweenAtoms(int(inv[i]), int(inv[j]))) - float(b)) < 1e-6
                    for (i, j), b in zip(ours, bond_types))
        if agree > best_agree:
            best, best_agree = inv, agree
    return best


def attach_rdkit_chemistry(graph: MolGraph, smiles: str | None = None) -> bool:
    """Fill ``graph.atom_chem`` / ``graph.bond_chem`` from RDKit, matching atoms to the graph's numbering.

    Parameters
    ----------
    graph : MolGraph  (its ``edges`` and ``elements`` are kept; only the chemistry arrays are set)
    smiles : str, optional  (default ``graph.name``)

    Returns
    -------
    bool: True when RDKit parsed the SMILES and its atoms matched the graph; else the arrays stay None.
    """
    try:
        mol = parse_smiles(smiles if smiles is not None else graph.name)
    except ValueError:
        return False
    idx = _match_atoms(mol, graph.elements, graph.edges, graph.bond_types)
    if idx is None:
        return False
    graph.atom_chem, graph.bond_chem = rdkit_chemistry(mol, graph.edges, idx, graph.bond_types)
    return True


def mol_graph_from_smiles(smiles: str) -> MolGraph:
    """Heavy-atom graph of a SMILES string, built with RDKit.

    Parameters
    ----------
    smiles : str
        The molecule. Hydrogens are dropped; aromatic bonds get order 1.5.

    Returns
    -------
    MolGraph
        With ``positions`` the RDKit 2D depiction coordinates (z = 0), used for drawing, and
        the RDKit chemistry arrays ``atom_chem`` / ``bond_chem``.

    Raises
    ------
    CGSurrogateError
        When RDKit cannot parse the SMILES or the molecule has no heavy atom.
    """
    mol = parse_smiles(smiles)
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    edges = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()],
                     dtype=np.int64).reshape(-1, 2)
    types = np.array([_rdkit_order(b) for b in mol.GetBonds()])
    atom_chem, bond_chem = rdkit_chemistry(mol, edges)
    from rdkit.Chem import rdDepictor

    rdDepictor.Compute2DCoords(mol)
    xy = mol.GetConformer().GetPositions()
    return MolGraph(elements, edges, types, name=smiles, positions=np.asarray(xy, dtype=np.float64),
                    atom_chem=atom_chem, bond_chem=bond_chem)
