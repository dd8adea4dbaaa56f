"""Protein MD: MDAnalysis loader (backbone, frame-difference velocities, cutoff A_global, bonded
A_local, timeline split, atom-count mismatch error) and the OpenMM amber14/GBn2 protocol on a
tripeptide cut from MDAnalysisTests' AdK (a handful of steps; resumable)."""
from pathlib import Path

import numpy as np
import pytest

from cgsurrogate.data.protein import load_protein_trajectory, mdanalysis_test_adk, open_universe, protein_splits, radius_edges

# MDAnalysisTests is in the [test] extra: a missing install must fail here, not skip silently.
import MDAnalysisTests  # noqa: E402,F401


@pytest.fixture(scope="module")
def adk():
    return load_protein_trajectory(mdanalysis_test_adk())


def test_adk_backbone_and_pairs(adk):
    assert [x.shape for x in adk.positions] == [(98, 855, 3), (102, 855, 3), (100, 855, 3)]
    assert adk.vocab == ["C", "CA", "N", "O"]
    # 855 = 4 x 214 - 1 (the C-terminal O is named OT1 in CHARMM); bonds N-CA, CA-C, C=O per residue
    # (minus the missing terminal C=O) and 213 peptide bonds C-N
    assert len(adk.bonds) == 3 * 214 - 1 + 213
    n_pairs = sum(x.shape[0] - 1 - 15 for x in adk.positions)
    assert n_pairs == 252
    sp = protein_splits(adk, span=15, max_pairs=20)
    assert [len(sp[k]) for k in ("train", "valid", "test")] == [12, 4, 4]
    g = sp["valid"][0]  # pair 12: segment 0, input frame 13
    x = adk.positions[0]
    assert np.allclose(g["pos"].numpy(), x[13]) and np.allclose(g["target"].numpy(), x[28])
    assert np.allclose(g["vel"].numpy(), x[13] - x[12])
    # positions in nm: AdK backbone spans a few nm
    assert 3.0 < float(g["pos"].max() - g["pos"].min()) < 10.0


def test_radius_edges_brute_force(rng):
    pos = rng.uniform(0, 3, size=(60, 3))
    ei = radius_edges(pos, 1.0)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    want = {(i, j) for i in range(60) for j in range(60) if i != j and d[i, j] < 1.0}
    assert set(map(tuple, ei.T.tolist())) == want


def test_atom_count_mismatch_is_a_clear_error():
    from MDAnalysisTests import datafiles as d
    root = Path(d.PSF).parent
    with pytest.raises(ValueError, match=r"47681 atoms but topology .*adk.psf has 3341"):
        open_universe(root / "adk.psf", root / "adk_oplsaa.xtc")
    with pytest.raises(FileNotFoundError, match="not found"):
        open_universe(root / "adk.psf", root / "nope.dcd")


def test_openmm_protocol_tripeptide_and_resume(tmp_path):
    from MDAnalysisTests import datafiles as d

    from cgsurrogate.simulate.protein import ProteinProtocol, peptide_from_pdb, run_protein_md
    pep = peptide_from_pdb(Path(d.PSF).parent / "adk_open.pdb", 3, tmp_path / "pep.pdb")
    proto = ProteinProtocol(total_ns=0.00008, report_every_ps=0.02, platform="CPU")  # 4 frames x 10 steps
    assert proto.steps_per_frame == 10 and proto.n_frames == 4
    meta = run_protein_md(pep, tmp_path / "run", proto, progress=False)
    assert meta["frames_written"] == 4 and meta["ns_per_day"] > 0 and meta["n_atoms"] == 63
    tr = load_protein_trajectory([(tmp_path / "run" / "topology.pdb", tmp_path / "run" / "trajectory.dcd")])
    first = tr.positions[0].copy()
    assert first.shape == (4, 12, 3)  # 3 residues x (N, CA, C, O); OXT is not in "backbone"
    step = np.linalg.norm(first[1:] - first[:-1], axis=-1)
    assert np.isfinite(first).all() and 0 < step.max() < 0.1  # atoms move, by less than 1 A per 20 fs
    # resume: a longer protocol appends to the same files
    meta2 = run_protein_md(pep, tmp_path / "run", ProteinProtocol(total_ns=0.00012, report_every_ps=0.02,
                                                                  platform="CPU"), progress=False)
    assert meta2["frames_written"] == 6
    tr2 = load_protein_trajectory([(tmp_path / "run" / "topology.pdb", tmp_path / "run" / "trajectory.dcd")])
    assert tr2.positions[0].shape[0] == 6
    assert np.allclose(tr2.positions[0][:4], first, atol=1e-4)


def test_ca_trace_gets_virtual_bonds():
    src = mdanalysis_test_adk()[:1]
    tr = load_protein_trajectory(src, selection="name CA")
    assert tr.positions[0].shape == (98, 214, 3)
    assert np.array_equal(tr.bonds, np.stack([np.arange(213), np.arange(1, 214)], 1))
    with pytest.raises(ValueError, match="matches no atoms"):
        load_protein_trajectory(src, selection="name XYZ")
