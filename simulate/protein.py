"""Protein MD in OpenMM for EGHN training data: amber14 + GBn2 implicit solvent, Langevin, 2 fs, HBonds.

:func:`run_protein_md` writes ``topology.pdb`` (the protonated, minimised structure),
``trajectory.dcd`` (a frame every ``report_every_ps``, default 10 ps) and ``metadata.json``
(protocol, units, software versions, measured ns/day) into an output folder; MDAnalysis reads the
pair directly (``cgsurrogate.data.protein.load_protein_trajectory([(topology.pdb, trajectory.dcd)])``).
The run saves an OpenMM XML state after every frame (written atomically) and resumes from it.
Units: OpenMM's (nm, ps, kJ/mol, K).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ProteinProtocol:
    """Simulation settings.

    Attributes
    ----------
    forcefield : tuple of str
        OpenMM force-field files (default amber14 with GBn2 implicit solvent).
    temperature_k : float
    friction_per_ps : float
        Langevin collision rate.
    timestep_fs : float
    total_ns : float
        Production length.
    report_every_ps : float
        Frame interval of the DCD.
    minimize : bool
        Energy-minimise before production.
    platform : str, optional
        OpenMM platform name (CUDA, OpenCL, CPU, Reference); fastest available when None.
    seed : int
    """

    forcefield: tuple = ("amber14-all.xml", "implicit/gbn2.xml")
    temperature_k: float = 300.0
    friction_per_ps: float = 1.0
    timestep_fs: float = 2.0
    total_ns: float = 10.0
    report_every_ps: float = 10.0
    minimize: bool = True
    platform: str | None = None
    seed: int = 0

    @property
    def steps_per_frame(self) -> int:
        return max(1, int(round(self.report_every_ps * 1000.0 / self.timestep_fs)))

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.total_ns * 1000.0 / self.report_every_ps)))


def _write_atomic(path: Path, text: str):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def peptide_from_pdb(pdb_path, n_residues: int, out_path) -> Path:
    """Cut the first ``n_residues`` of a protein PDB into a small peptide with a C-terminal OXT.

    Handy for quick CPU checks of the protocol (no downloads: e.g. MDAnalysisTests' ``adk_open.pdb``).
    The OXT oxygen is placed by mirroring O about the CA-C axis; the run's minimisation relaxes it.

    Returns
    -------
    Path of the written PDB.
    """
    import numpy as np
    from openmm import Vec3, app, unit

    pdb_path, out_path = Path(pdb_path), Path(out_path)
    if not pdb_path.is_file():
        raise FileNotFoundError(f"{pdb_path}: structure file not found")
    pdb = app.PDBFile(str(pdb_path))
    model = app.Modeller(pdb.topology, pdb.positions)
    residues = list(model.topology.residues())
    if not 1 <= n_residues <= len(residues):
        raise ValueError(f"{pdb_path}: cannot keep {n_residues} of its {len(residues)} residues")
    model.delete(residues[n_residues:])
    last = list(model.topology.residues())[-1]
    atoms = {a.name: a for a in last.atoms()}
    if not {"C", "O", "CA"} <= set(atoms):
        raise ValueError(f"{pdb_path}: residue {last.name} has no backbone C/O/CA to cap")
    pos = np.array(model.positions.value_in_unit(unit.nanometer))
    C, O, CA = pos[atoms["C"].index], pos[atoms["O"].index], pos[atoms["CA"].index]
    ax = (C - CA) / np.linalg.norm(C - CA)
    oxt = C + 2 * np.dot(O - C, ax) * ax - (O - C)
    top = model.topology
    top.addBond(atoms["C"], top.addAtom("OXT", app.Element.getBySymbol("O"), last))
    positions = unit.Quantity([Vec3(*p) for p in pos] + [Vec3(*oxt)], unit.nanometer)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "w") as fh:
        app.PDBFile.writeFile(top, positions, fh)
    os.replace(tmp, out_path)
    return out_path


def build_protein_simulation(pdb_path, protocol: ProteinProtocol):
    """Protonate a PDB and build an OpenMM Simulation.

    Parameters
    ----------
    pdb_path : path
        Protein structure (waters and ions are removed: the solvent is implicit).

    Returns
    -------
    simulation : openmm.app.Simulation;  topology : openmm.app.Topology
    """
    import openmm as mm
    from openmm import app, unit

    pdb_path = Path(pdb_path)
    if not pdb_path.is_file():
        raise FileNotFoundError(f"{pdb_path}: structure file not found")
    try:
        pdb = app.PDBFile(str(pdb_path))
    except Exception as exc:
        raise ValueError(f"{pdb_path}: OpenMM cannot read this PDB ({str(exc).splitlines()[0]})") from None
    ff = app.ForceField(*protocol.forcefield)
    model = app.Modeller(pdb.topology, pdb.positions)
    model.deleteWater()
    ions = [r for r in model.topology.residues() if r.name in ("NA", "CL", "NA+", "CL-", "K", "K+", "MG", "CA")
            and len(list(r.atoms())) == 1]
    if ions:
        model.delete(ions)
    try:
        model.addHydrogens(ff)
        system = ff.createSystem(model.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    except ValueError as exc:
        raise ValueError(f"{pdb_path}: {str(exc).splitlines()[0]}") from None
    integ = mm.LangevinMiddleIntegrator(protocol.temperature_k * unit.kelvin,
                                        protocol.friction_per_ps / unit.picosecond,
                                        protocol.timestep_fs * unit.femtosecond)
    integ.setRandomNumberSeed(protocol.seed)
    platform = mm.Platform.getPlatformByName(protocol.platform) if protocol.platform else None
    sim = app.Simulation(model.topology, system, integ, platform) if platform else \
        app.Simulation(model.topology, system, integ)
    sim.context.setPositions(model.positions)
    return sim, model.topology


def run_protein_md(pdb_path, out_dir, protocol: ProteinProtocol | None = None, progress: bool = True) -> dict:
    """Run (or resume) a protein trajectory.

    Parameters
    ----------
    pdb_path : path
        Input structure.
    out_dir : path
        Output folder (``topology.pdb``, ``trajectory.dcd``, ``state.xml``, ``metadata.json``).
    protocol : ProteinProtocol

    Returns
    -------
    dict
        The metadata written (frames, ns simulated, measured ``ns_per_day``, platform).
    """
    import openmm as mm
    from openmm import app, unit

    protocol = protocol or ProteinProtocol()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim, top = build_protein_simulation(pdb_path, protocol)
    state_path, dcd_path, top_path, meta_path = (out / "state.xml", out / "trajectory.dcd",
                                                 out / "topology.pdb", out / "metadata.json")
    done = 0
    if state_path.is_file() and dcd_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        done = int(meta.get("frames_written", 0))
        try:
            sim.context.setState(mm.XmlSerializer.deserialize(state_path.read_text()))
        except Exception as exc:
            raise ValueError(f"{state_path}: cannot resume from this state ({exc.__class__.__name__})") from None
    else:
        if protocol.minimize:
            sim.minimizeEnergy()
        sim.context.setVelocitiesToTemperature(protocol.temperature_k * unit.kelvin, protocol.seed)
        with open(top_path, "w") as fh:
            app.PDBFile.writeFile(top, sim.context.getState(getPositions=True).getPositions(), fh)
        dcd_path.unlink(missing_ok=True)
    meta = {"protocol": asdict(protocol), "input": str(pdb_path), "n_atoms": top.getNumAtoms(),
            "units": {"positions": "nm in OpenMM, Angstrom in the DCD", "time": "ps", "temperature": "K"},
            "platform": sim.context.getPlatform().getName(), "openmm": mm.__version__,
            "frames_written": done, "frame_interval_ps": protocol.report_every_ps}
    fh = open(dcd_path, "r+b" if done else "wb")
    try:
        dcd = app.DCDFile(fh, top, protocol.timestep_fs * unit.femtosecond, firstStep=done * protocol.steps_per_frame, interval=protocol.steps_per_frame,
                          append=bool(done))
        it = range(done, protocol.n_frames)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc="protein MD frames", initial=done, total=protocol.n_frames)
        t0, steps = time.perf_counter(), 0
        for k in it:
            sim.step(protocol.steps_per_frame)
            steps += protocol.steps_per_frame
            st = sim.context.getState(getPositions=True)
            dcd.writeModel(st.getPositions())
            fh.flush()
            _write_atomic(state_path, mm.XmlSerializer.serialize(
                sim.context.getState(getPositions=True, getVelocities=True, getParameters=True)))
            meta["frames_written"] = k + 1
            _write_atomic(meta_path, json.dumps(meta, indent=1))
        wall = time.perf_counter() - t0
    finally:
        fh.close()
    if steps:
        ns = steps * protocol.timestep_fs * 1e-6
        meta["ns_per_day"] = ns / wall * 86400.0
        meta["measured_steps"] = steps
        meta["measured_wall_s"] = wall
    meta["ns_simulated"] = meta["frames_written"] * protocol.report_every_ps * 1e-3
    _write_atomic(meta_path, json.dumps(meta, indent=1))
    return meta
