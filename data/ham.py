"""HAM (Human-annotated Mappings) loader, node features and cross-validation folds.

The dataset is a folder of JSON files, one per expert annotation (see the README next to
the data): ``smiles``, ``nodes`` ({id, element, cg}), ``edges`` ({source, target,
bondtype}), ``cgnodes``. Several annotations share a SMILES (same molecule, same atom
order); folds are therefore grouped by molecule (Li et al. 2020, sec. 4.2).

Every graph gets RDKit's chemistry (aromaticity, hybridisation, charges, ring sizes, RDKit's
bond orders) from its SMILES, matched to the file's atom numbering
(:func:`cgsurrogate.data.molgraph.attach_rdkit_chemistry`): the features a model sees are the
same as for the molecule given as SMILES. The file's own bond orders stay in
``graph.bond_types`` (they define the automorphisms of the paper's evaluation protocol).

Pass the folder explicitly, or set ``CGS_SHARED_DATA`` to a folder holding ``ham/``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.data.molgraph import BOND_TYPES, ELEMENTS, MolGraph, attach_rdkit_chemistry

__all__ = ["HAMAnnotation", "ham_root", "load_ham_file", "load_ham", "group_by_molecule", "ham_folds",
           "ELEMENTS", "BOND_TYPES"]


@dataclass
class HAMAnnotation:
    """One expert annotation of one molecule.

    Attributes
    ----------
    graph : MolGraph
        Heavy-atom graph (shared by all annotations of the same SMILES).
    labels : ndarray of int64, shape [n]
        Bead index of each atom, 0..n_beads-1.
    path : str
        The JSON file it came from.
    """

    graph: MolGraph
    labels: np.ndarray
    path: str

    @property
    def smiles(self) -> str:
        """The molecule's SMILES (its grouping key)."""
        return self.graph.name

    @property
    def n_beads(self) -> int:
        """Number of CG beads in this annotation."""
        return int(self.labels.max()) + 1


def ham_root(root=None) -> Path:
    """Resolve the HAM folder: ``root`` if given (a folder of JSON files, or one holding ``ham/``),
    else ``$CGS_SHARED_DATA/ham``.

    Raises
    ------
    FileNotFoundError
        When neither is given or the folder does not exist.
    """
    if root is None:
        env = os.environ.get("CGS_SHARED_DATA")
        if not env:
            raise InputFileError("no HAM folder given and CGS_SHARED_DATA is not set")
        root = Path(env) / "ham"
    root = Path(root)
    if root.is_dir() and (root / "ham").is_dir() and not any(root.glob("*.json")):
        root = root / "ham"
    if not root.is_dir():
        raise InputFileError(f"{root}: HAM folder not found")
    return root


def load_ham_file(path, graph_cache: dict | None = None) -> HAMAnnotation:
    """Read one HAM annotation file.

    Parameters
    ----------
    path : str or Path
    graph_cache : dict, optional
        SMILES -> MolGraph; annotations of a molecule already seen reuse its graph object.

    Raises
    ------
    ValueError
        When the file is not valid JSON or not in HAM's format (message names the file).
    """
    path = Path(path)
    try:
        with open(path) as fh:
            d = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from exc
    try:
        nodes = sorted(d["nodes"], key=lambda x: int(x["id"]))
        ids = [int(x["id"]) for x in nodes]
        if ids != list(range(len(ids))):
            raise ValueError("node ids are not 0..n-1")
        elements = [str(x["element"]) for x in nodes]
        labels = np.array([int(x["cg"]) for x in nodes], dtype=np.int64)
        edges = np.array([(int(e["source"]), int(e["target"])) for e in d["edges"]], dtype=np.int64).reshape(-1, 2)
        types = np.array([float(e["bondtype"]) for e in d["edges"]])
        smiles = str(d["smiles"])
    except (KeyError, TypeError) as exc:
        raise InputFileError(f"{path}: not a HAM annotation (missing or bad field {exc})") from exc
    except ValueError as exc:
        raise InputFileError(f"{path}: {exc}") from exc
    if len(labels) == 0:
        raise InputFileError(f"{path}: no atoms")
    # relabel beads to 0..k-1 (order of first appearance)
    _, labels = np.unique(labels, return_inverse=True)
    graph = None
    if graph_cache is not None:
        graph = graph_cache.get(smiles)
        if graph is not None and (graph.elements != elements or graph.num_bonds != len(edges)):
            graph = None  # same SMILES written with another atom order: keep its own graph
    if graph is None:
        try:
            graph = MolGraph(elements, edges, types, name=smiles)
        except ValueError as exc:
            raise CGSurrogateError(f"{path}: {exc}") from exc
        attach_rdkit_chemistry(graph, smiles)
        if graph_cache is not None and smiles not in graph_cache:
            graph_cache[smiles] = graph
    return HAMAnnotation(graph=graph, labels=labels.astype(np.int64), path=str(path))


def load_ham(root=None) -> list[HAMAnnotation]:
    """Load every annotation of a HAM folder, sorted by file name.

    Parameters
    ----------
    root : str or Path, optional
        The folder of JSON files (or a folder holding ``ham/``); default ``$CGS_SHARED_DATA/ham``.

    Returns
    -------
    list of HAMAnnotation
    """
    root = ham_root(root)
    files = sorted(root.glob("*.json"))
    if not files:
        raise InputFileError(f"{root}: no *.json annotation files")
    cache: dict = {}
    return [load_ham_file(f, cache) for f in files]


def group_by_molecule(annotations) -> dict[str, list[int]]:
    """SMILES -> indices of its annotations, in first-appearance order."""
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(annotations):
        groups.setdefault(a.smiles, []).append(i)
    return groups


def ham_folds(annotations, n_folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Cross-validation folds grouped by molecule.

    Molecules (distinct SMILES) are shuffled with ``seed`` and dealt round-robin into
    ``n_folds`` folds; every annotation of a molecule lands in its molecule's fold.

    Parameters
    ----------
    annotations : list of HAMAnnotation
    n_folds : int
    seed : int

    Returns
    -------
    list of ndarray of int64
        Annotation indices of each fold; disjoint, covering all annotations.
    """
    if n_folds < 2:
        raise CGSurrogateError(f"n_folds must be >= 2, got {n_folds}")
    groups = group_by_molecule(annotations)
    keys = sorted(groups)
    if len(keys) < n_folds:
        raise CGSurrogateError(f"{len(keys)} molecules cannot fill {n_folds} folds")
    order = np.random.default_rng(seed).permutation(len(keys))
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for r, k in enumerate(order):
        folds[r % n_folds].extend(groups[keys[k]])
    return [np.array(sorted(f), dtype=np.int64) for f in folds]
