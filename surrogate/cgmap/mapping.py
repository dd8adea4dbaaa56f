"""Map a molecule to coarse-grained beads and draw the mapping (the ``cgmap`` command).

Input: a SMILES string (RDKit builds the heavy-atom graph) or a structure file read by
MDAnalysis (e.g. a protein). Output: the mapping as JSON in HAM's annotation format and a
PNG drawing (atoms coloured by bead, cut bonds in grey). The default model is the DSGPM
checkpoint shipped with the package.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["map_molecule", "draw_mapping"]

METHODS = ("dsgpm", "spectral", "metis")


def map_molecule(*, smiles: str | None = None, structure=None, selection: str = "not element H and not name H*",
                 n_beads: int, method: str = "dsgpm", checkpoint=None, seed: int = 0,
                 out_json=None, out_png=None):
    """Predict a CG mapping of one molecule and optionally write it (JSON) and draw it (PNG).

    Parameters
    ----------
    smiles : str, optional
        The molecule as SMILES (exactly one of ``smiles`` / ``structure``).
    structure : str or Path, optional
        Structure file readable by MDAnalysis; bonds from the topology or guessed.
    selection : str
        MDAnalysis selection applied to ``structure``.
    n_beads : int
        Number of beads (1 .. number of heavy atoms).
    method : {"dsgpm", "spectral", "metis"}
        DSGPM (learned affinity), spectral clustering on the plain adjacency, or METIS.
    checkpoint : str or Path, optional
        DSGPM checkpoint (default: the shipped pretrained model).
    seed : int
        k-means seed of spectral clustering.
    out_json, out_png : str or Path, optional
        Where to write the HAM-format JSON and the drawing (both written atomically).

    Returns
    -------
    graph : cgsurrogate.data.molgraph.MolGraph
    labels : int64 [n] bead of each heavy atom (exactly ``n_beads`` connected beads)
    """
    from cgsurrogate.data.molgraph import mol_graph_from_smiles, mol_graph_from_structure, write_mapping_json
    from cgsurrogate.surrogate.cgmap.dsgpm import enforce_connectivity, load_dsgpm, load_pretrained, metis_partition, predict_mapping

    if (smiles is None) == (structure is None):
        raise ValueError("give exactly one of a SMILES string or a structure file")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    graph = mol_graph_from_smiles(smiles) if smiles is not None else mol_graph_from_structure(structure, selection)
    if not isinstance(n_beads, (int, np.integer)) or n_beads < 1:
        raise ValueError(f"number of beads must be a positive integer, got {n_beads!r}")
    if n_beads > graph.num_atoms:
        raise ValueError(f"cannot map {graph.num_atoms} heavy atoms to {n_beads} beads: the bead count exceeds "
                         f"the atom count")
    if method == "dsgpm":
        model = load_dsgpm(checkpoint) if checkpoint is not None else load_pretrained()
        labels = predict_mapping(model, graph, n_beads, seed=seed)
    elif method == "spectral":
        labels = predict_mapping(None, graph, n_beads, seed=seed)
    else:
        labels = enforce_connectivity(metis_partition(graph, n_beads, seed=seed), graph.edges, n_beads)
    if out_json is not None:
        write_mapping_json(out_json, graph, labels)
    if out_png is not None:
        draw_mapping(graph, labels, out_png)
    return graph, labels


def _layout(graph) -> np.ndarray:
    if graph.positions is not None:
        xyz = np.asarray(graph.positions, dtype=np.float64)
        xyz = xyz - xyz.mean(0)
        if np.ptp(xyz[:, 2]) < 1e-9:
            return xyz[:, :2]
        _, _, vt = np.linalg.svd(xyz, full_matrices=False)  # project on the two main axes
        return xyz @ vt[:2].T
    import networkx as nx

    pos = nx.kamada_kawai_layout(graph.nx_graph()) if graph.num_atoms > 1 else {0: (0.0, 0.0)}
    return np.array([pos[i] for i in range(graph.num_atoms)])


def draw_mapping(graph, labels, path, title: str | None = None) -> Path:
    """Draw a mapping: atoms coloured by bead, bonds inside a bead in the bead's colour, cut bonds grey.

    Parameters
    ----------
    graph : cgsurrogate.data.molgraph.MolGraph
    labels : int [n]
    path : str or Path  PNG to write (atomically)
    title : str, optional

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    xy = _layout(graph)
    k = int(labels.max()) + 1
    cmap = plt.get_cmap("tab20" if k > 10 else "tab10")
    colors = [cmap(b % cmap.N) for b in labels]
    n = graph.num_atoms
    big = n > 120
    fig, ax = plt.subplots(figsize=(8, 7) if big else (6, 5), dpi=120)
    for (i, j), bt in zip(graph.edges.tolist(), graph.bond_types.tolist()):
        same = labels[i] == labels[j]
        ax.plot(xy[[i, j], 0], xy[[i, j], 1], color=colors[i] if same else "0.6",
                lw=(3.0 if same else 1.2) * (0.5 if big else 1.0) * (1.0 + 0.4 * (bt - 1.0)), zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=12 if big else 260, edgecolors="k", linewidths=0.3 if big else 0.8,
               zorder=2)
    if not big:
        for i, el in enumerate(graph.elements):
            ax.text(xy[i, 0], xy[i, 1], el, ha="center", va="center", fontsize=8, zorder=3)
    ax.set_aspect("equal")
    ax.axis("off")
    name = Path(graph.name).name if graph.name and Path(graph.name).is_file() else graph.name
    name = name if len(name) < 60 else "..." + name[-57:]
    ax.set_title(title or f"{name}\n{n} heavy atoms -> {k} beads", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
