"""Structures: a PSF without elements, the residue-aware protein mode, PDB outputs that
round-trip through MDAnalysis, and the cgmap command on AdK."""
import json
import warnings

import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import DCD, PSF

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.molstructure import read_structure
from cgsurrogate.surrogate.cgmap.mapping import map_molecule, write_outputs
from cgsurrogate.surrogate.cgmap.protein import allocate_beads, map_by_residue
from cgsurrogate.surrogate.cgmap.structure_io import bead_centres, residue_table, write_bead_pdb, write_cg_pdb


@pytest.fixture(scope="module")
def adk():
    return read_structure((PSF, DCD))


def test_psf_without_elements_falls_back_to_masses():
    u = mda.Universe(PSF)
    assert not hasattr(u.atoms, "elements")  # the premise: a PSF has no element field
    g, atoms = read_structure(PSF)  # topology only: no coordinates
    assert g.residues["element_source"] == "masses" and g.positions is None
    # independent reference: CHARMM atom names start with the element letter for C, N, O, S
    assert g.elements == [n[0] for n in atoms.names]
    assert "H" not in g.elements and g.num_atoms == int((u.atoms.masses > 1.5).sum())
    res = map_molecule(structure=PSF, selection="resid 1:20", n_beads=40, method="spectral")
    assert len(np.unique(res.labels)) == 40


def _straddles(g, labels):
    res = np.asarray(g.residues["resindex"])
    return [b for b in np.unique(labels) if len(np.unique(res[labels == b])) > 1]


def test_residue_mode_never_splits_a_residue_across_a_peptide_bond(adk):
    g, _ = adk
    n_res = len(np.unique(g.residues["resindex"]))
    assert n_res == 214 and g.residues["peptide"].sum() == 213
    for n_beads in (214, 700):
        lab = map_by_residue(g, n_beads=n_beads)
        assert len(np.unique(lab)) == n_beads
        assert _straddles(g, lab) == []
        pep = g.edges[g.residues["peptide"]]
        assert np.all(lab[pep[:, 0]] != lab[pep[:, 1]])  # every peptide bond is cut
    lab = map_by_residue(g, beads_per_residue=2)
    assert _straddles(g, lab) == [] and len(np.unique(lab)) == 214 + sum(
        len(np.flatnonzero(g.residues["resindex"] == r)) > 1 for r in np.unique(g.residues["resindex"]))
    with pytest.raises(CGSurrogateError, match="peptide bond"):
        map_by_residue(g, n_beads=100)
    lab = map_by_residue(g, n_beads=100, allow_cross_residue=True)  # asked: consecutive residues share beads
    assert len(np.unique(lab)) == 100
    res = np.asarray(g.residues["resindex"])
    for b in np.unique(lab):
        r = np.unique(res[lab == b])
        assert np.array_equal(r, np.arange(r.min(), r.max() + 1))  # contiguous along the chain


def test_allocate_beads_is_proportional_and_bounded():
    out = allocate_beads([1, 4, 10], 6)
    assert out.sum() == 6 and out[0] == 1 and out.tolist() == [1, 2, 3]
    with pytest.raises(CGSurrogateError):
        allocate_beads([1, 2], 4)


def test_bead_pdb_round_trips_and_cg_pdb_sits_at_bead_centres(adk, tmp_path):
    g, atoms = adk
    lab = map_by_residue(g, n_beads=400)
    write_bead_pdb(tmp_path / "b.pdb", atoms, lab)
    write_cg_pdb(tmp_path / "cg.pdb", g, atoms, lab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ub = mda.Universe(str(tmp_path / "b.pdb"))
        ucg = mda.Universe(str(tmp_path / "cg.pdb"))
    np.testing.assert_array_equal(ub.atoms.tempfactors.astype(int), lab)
    np.testing.assert_allclose(ub.atoms.positions, atoms.positions, atol=1e-3)
    assert len(ucg.atoms) == 400
    np.testing.assert_array_equal(ucg.atoms.tempfactors.astype(int), np.arange(400))
    # centres of mass recomputed independently from the original universe, bead by bead
    ref = np.array([atoms[lab == b].center_of_mass() for b in range(400)])
    np.testing.assert_allclose(ucg.atoms.positions, ref, atol=1e-3)
    np.testing.assert_allclose(bead_centres(atoms.positions, lab, atoms.masses), ref, atol=1e-4)
    assert len(ucg.bonds) == 399  # beads of a single chain without cross-residue rings form a tree
    table = residue_table(g, lab).splitlines()
    assert len(table) == 215 and table[1].split("\t")[:3] == ["4AKE", "1", "MET"]


def test_cgmap_cli_on_adk_psf_dcd(tmp_path, capsys):
    from cgsurrogate import cli

    out = tmp_path / "adk.json"
    rc = cli.main(["cgmap", "--structure", PSF, "--coords", DCD, "--by-residue", "--beads", "300",
                   "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    d = json.loads(out.read_text())
    assert len(d["cgnodes"]) == 300
    for suffix in (".beads.pdb", ".cg.pdb", ".residues.tsv"):
        assert (tmp_path / f"adk{suffix}").stat().st_size > 0
    assert not (tmp_path / "adk.png").exists() and "no picture" in text.out  # 1656 atoms: not drawn
    rc = cli.main(["cgmap", "--structure", PSF, "--coords", DCD, "--by-residue", "--beads", "50",
                   "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "peptide bond" in err


def test_small_structure_is_drawn(tmp_path):
    from MDAnalysisTests.datafiles import PDB_small

    res = map_molecule(structure=PDB_small, selection="resid 1:5", n_beads=8, method="spectral")
    files = write_outputs(res, tmp_path / "p.json")
    assert files["png"].stat().st_size > 1000
