"""Map a molecule to coarse-grained beads and write what a user opens (the ``cgmap`` command).

Input: a SMILES string (RDKit builds the heavy-atom graph) or a structure file read by
MDAnalysis (a protein, a PSF without elements, ...). Output: the mapping as JSON in HAM's
annotation format (beads numbered by their first atom, as in ``cgnodes``), a picture when
it can be read, and for structures a PDB with the bead index in the B-factor column, a CG
PDB with one pseudo-atom per bead and a residue-to-bead table. The default model is the
DSGPM checkpoint shipped with the package. Only the libraries a path uses are imported
(no torch, scikit-learn or SciPy for a SMILES).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

__all__ = ["METHODS", "MappingResult", "map_molecule", "write_outputs", "draw_mapping"]

METHODS = ("dsgpm", "spectral", "metis")


@dataclass
class MappingResult:
    """A predicted mapping: ``graph`` (MolGraph), ``labels`` int64 [n], the source, and the written files."""

    graph: object
    labels: np.ndarray
    smiles: str | None = None
    atoms: object = None
    files: dict = field(default_factory=dict)


def _predict(graph, n_beads, method, checkpoint, seed, by_residue, beads_per_residue, allow_cross_residue):
    from cgsurrogate.surrogate.cgmap.checkpoint import load_dsgpm, load_pretrained
    from cgsurrogate.surrogate.cgmap.inference import model_affinity
    from cgsurrogate.surrogate.cgmap.partition import enforce_connectivity, metis_partition, spectral_partition

    model = None
    if method == "dsgpm":
        model = load_dsgpm(checkpoint) if checkpoint is not None else load_pretrained()
    if by_residue:
        from cgsurrogate.surrogate.cgmap.protein import map_by_residue

        aff = model_affinity(model, graph) if method == "dsgpm" else None
        return map_by_residue(graph, n_beads=n_beads, beads_per_residue=beads_per_residue, affinity=aff,
                              allow_cross_residue=allow_cross_residue, seed=seed)
    if method == "metis":
        return enforce_connectivity(metis_partition(graph, n_beads, seed=seed), graph.edges, n_beads)
    aff = model_affinity(model, graph)
    return enforce_connectivity(spectral_partition(aff, n_beads, seed=seed), graph.edges, n_beads, affinity=aff)


def map_molecule(*, smiles: str | None = None, structure=None, selection: str | None = None,
                 n_beads: int | None = None, method: str = "dsgpm", checkpoint=None, seed: int = 0,
                 by_residue: bool = False, beads_per_residue: int | None = None,
                 allow_cross_residue: bool = False) -> MappingResult:
    """Predict a CG mapping of one molecule.

    Parameters
    ----------
    smiles : str, optional  (exactly one of ``smiles`` / ``structure``)
    structure : str or Path or (topology, coordinates), optional  (read by MDAnalysis)
    selection : str, optional  MDAnalysis selection (hydrogens are always dropped)
    n_beads : int  number of beads (1 .. heavy atoms); with ``by_residue`` optional
    method : {"dsgpm", "spectral", "metis"}
    checkpoint : DSGPM checkpoint (default: the shipped model)
    seed : int  k-means seed
    by_residue : bool  residue-aware protein mode (:mod:`cgsurrogate.surrogate.cgmap.protein`)
    beads_per_residue : int, optional  residue mode: beads per residue instead of ``n_beads``
    allow_cross_residue : bool  residue mode: allow fewer beads than residues

    Returns
    -------
    MappingResult (labels: exactly ``n_beads`` connected beads, numbered by first atom)

    Raises
    ------
    CGSurrogateError
        Invalid SMILES, unreadable structure, bad bead count, unknown method.
    """
    if (smiles is None) == (structure is None):
        raise CGSurrogateError("give exactly one of a SMILES string or a structure file")
    if method not in METHODS:
        raise CGSurrogateError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if by_residue and structure is None:
        raise CGSurrogateError("the residue mode needs a structure file (residues), not a SMILES")
    if by_residue and method == "metis":
        raise CGSurrogateError("the residue mode splits residues with dsgpm or spectral, not metis")
    if not by_residue and n_beads is None:
        raise CGSurrogateError("give the number of beads")
    if n_beads is not None and (isinstance(n_beads, bool) or not isinstance(n_beads, (int, np.integer))
                                or n_beads < 1):
        raise CGSurrogateError(f"number of beads must be a positive integer, got {n_beads!r}")
    atoms = None
    if smiles is not None:
        from cgsurrogate.data.molgraph import mol_graph_from_smiles

        graph = mol_graph_from_smiles(smiles)
    else:
        from cgsurrogate.data.molstructure import read_structure

        graph, atoms = read_structure(structure, selection)
    if n_beads is not None and n_beads > graph.num_atoms:
        raise CGSurrogateError(f"cannot map {graph.num_atoms} heavy atoms to {n_beads} beads: the bead count "
                               f"exceeds the atom count")
    labels = _predict(graph, n_beads, method, checkpoint, seed, by_residue, beads_per_residue, allow_cross_residue)
    return MappingResult(graph=graph, labels=labels, smiles=smiles, atoms=atoms)


def write_outputs(result: MappingResult, out_json, png=None, draw: bool = True) -> dict:
    """Write the mapping JSON and, for structures, ``<stem>.beads.pdb``, ``<stem>.cg.pdb``, ``<stem>.residues.tsv``.

    The picture (``png``, default ``<stem>.png``) is drawn only when it can be read
    (:func:`cgsurrogate.surrogate.cgmap.drawing.drawable`). Returns {kind: path} of the files written.
    """
    from cgsurrogate.data.molgraph import write_mapping_json
    from cgsurrogate.surrogate.cgmap.drawing import draw_mapping as draw

    out_json = Path(out_json)
    stem = out_json.with_suffix("")
    files = {"json": write_mapping_json(out_json, result.graph, result.labels)}
    if result.atoms is not None and result.graph.positions is not None:
        from cgsurrogate.surrogate.cgmap.structure_io import MAX_PDB_BEADS, write_bead_pdb, write_cg_pdb

        if int(result.labels.max()) < MAX_PDB_BEADS:
            files["bead_pdb"] = Path(write_bead_pdb(f"{stem}.beads.pdb", result.atoms, result.labels))
        files["cg_pdb"] = Path(write_cg_pdb(f"{stem}.cg.pdb", result.graph, result.atoms, result.labels))
    if result.graph.residues is not None:
        from cgsurrogate.surrogate.cgmap.structure_io import write_residue_table

        files["residues"] = write_residue_table(f"{stem}.residues.tsv", result.graph, result.labels)
    if draw:
        p = draw(result.graph, result.labels, png or f"{stem}.png", smiles=result.smiles)
        if p is not None:
            files["png"] = p
    result.files = files
    return files


def draw_mapping(graph, labels, path, title: str | None = None):
    """Draw a structure graph's mapping (matplotlib 2D projection); see :mod:`cgsurrogate.surrogate.cgmap.drawing`."""
    from cgsurrogate.surrogate.cgmap.drawing import draw_graph_mapping

    return draw_graph_mapping(graph, labels, path, title=title)
