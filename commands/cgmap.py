"""Command-line parser and handler of the ``cgmap`` command: learned coarse-grained mappings of molecules."""
from __future__ import annotations

import os

from cgsurrogate.core.errors import CGSurrogateError


def add_cgmap(sub):
    p = sub.add_parser("cgmap", help="map a molecule (SMILES or structure file) to CG beads (DSGPM)",
                       description="Predict a coarse-grained mapping with the shipped DSGPM model (or a baseline) and "
                                   "write it as JSON in HAM's format, with a picture for small molecules; for "
                                   "structures also a PDB with the bead index in the B-factor column "
                                   "(OUT.beads.pdb), a CG PDB with one atom per bead (OUT.cg.pdb) and a "
                                   "residue-to-bead table (OUT.residues.tsv).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--smiles", help="molecule as SMILES (RDKit builds the heavy-atom graph)")
    src.add_argument("--structure", help="structure file read by MDAnalysis (PDB, GRO, PSF with --coords, ...)")
    p.add_argument("--coords", help="coordinate/trajectory file for a topology-only --structure (PSF + DCD/CRD)")
    p.add_argument("--selection", default=None,
                   help="MDAnalysis selection of the atoms to map (structure input; hydrogens are always dropped)")
    p.add_argument("--beads", type=int, help="number of CG beads")
    p.add_argument("--by-residue", action="store_true",
                   help="protein mode: beads follow residues (one or more per residue, none across a peptide bond)")
    p.add_argument("--beads-per-residue", type=int, help="protein mode: beads per residue instead of --beads")
    p.add_argument("--allow-cross-residue", action="store_true",
                   help="protein mode: allow fewer beads than residues (consecutive residues share a bead)")
    p.add_argument("--method", choices=["dsgpm", "spectral", "metis"], default="dsgpm")
    p.add_argument("--checkpoint", help="DSGPM checkpoint (default: the model shipped with the package)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="cgmap.json", help="output JSON (HAM format); other files share its stem")
    p.add_argument("--png", help="picture (default: the --out path with .png; drawn only when it can be read)")
    p.add_argument("--no-picture", action="store_true", help="do not draw")
    p.set_defaults(func=_run_cgmap)


def _run_cgmap(args):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices; before numpy loads
    from cgsurrogate.surrogate.cgmap.mapping import map_molecule, write_outputs

    if args.beads is None and args.beads_per_residue is None:
        raise CGSurrogateError("give --beads N (or --beads-per-residue K with --by-residue)")
    if args.beads_per_residue is not None and not args.by_residue:
        raise CGSurrogateError("--beads-per-residue needs --by-residue")
    if args.beads is not None and args.beads_per_residue is not None:
        raise CGSurrogateError("give either --beads or --beads-per-residue, not both")
    structure = None
    if args.structure:
        structure = (args.structure, args.coords) if args.coords else args.structure
    res = map_molecule(smiles=args.smiles, structure=structure, selection=args.selection, n_beads=args.beads,
                       method=args.method, checkpoint=args.checkpoint, seed=args.seed, by_residue=args.by_residue,
                       beads_per_residue=args.beads_per_residue, allow_cross_residue=args.allow_cross_residue)
    files = write_outputs(res, args.out, png=args.png, draw=not args.no_picture)
    labels = res.labels
    import numpy as np

    sizes = sorted(np.bincount(labels).tolist(), reverse=True)
    shown = str(sizes) if len(sizes) <= 12 else f"{sizes[-1]}..{sizes[0]} atoms"
    print(f"{res.graph.num_atoms} heavy atoms -> {len(sizes)} beads (sizes {shown}); wrote "
          + ", ".join(str(p) for p in files.values()))
    if "png" not in files and not args.no_picture:
        print("no picture: too many atoms to read in 2D; open the PDB files in a viewer (colour by B-factor)")
    return 0
