"""Exact export of the invariant potential, at fixed strengths, to native OpenMM forces.

For one strength set ``s``, :class:`~cgsurrogate.surrogate.gcn.potential.InvariantPotential` is a
sum over bonds and angles of ``E_t = k_kind(t)(s) q_t [x exp(sum_m b_kind(t),m(s) tanh(q_t / c_m))]``
with ``q_t`` the squared deviation of the bond length or angle from its resting value. The network
is only evaluated once per kind (7 numbers, or 7 x 4 with the anharmonic factor), so the model *is*
a classical force field:

* harmonic model (the shipped one): OpenMM's ``HarmonicBondForce`` / ``HarmonicAngleForce`` with
  ``k_openmm = 2 k_kind(s)`` (OpenMM's ``E = k/2 (x - x0)^2``) and the topology's resting values:
  the force types of the exact-field engine (:func:`cgsurrogate.simulate.openmm_system.build_microtubule_system`);
* anharmonic model: ``CustomBondForce`` / ``CustomAngleForce`` with the same expression.

The exported ``System`` is the engine's own (same particles, masses, clamp, force groups, the
load's ``CustomExternalForce`` and its ``load_scale`` parameter), with the surrogate's stiffness in
place of the exact one, so every protocol tool (:mod:`cgsurrogate.simulate.integrator`) runs it
unchanged, at native OpenMM speed. For a straight resting angle (theta0 = pi) OpenMM's angle is
``acos``-based and the model's ``atan2(|u x v|, -u.v)``: the same angle, so the same ``q``.
Agreement with the torch model is measured in ``tests/surrogate/interfaces/test_surrogate_openmm_native.py``
(Reference platform, float64).
"""
from __future__ import annotations

import numpy as np
import torch


def kind_stiffness(model, params) -> tuple[np.ndarray, np.ndarray]:
    """``(k [7], b [7, M])`` of ``model`` at strengths ``params [5]`` zJ: kJ/mol per nm^2 (bond kinds)
    or rad^2 (angle kinds), and the anharmonic coefficients (``M = 0`` for a harmonic model)."""
    from cgsurrogate.core.errors import CGSurrogateError

    p = torch.as_tensor(np.asarray(params, np.float64)).reshape(1, -1)
    if p.shape[1] != 5 or not bool(torch.isfinite(p).all()) or bool((p <= 0).any()):
        raise CGSurrogateError(f"strengths must be 5 positive finite numbers (zJ), got {np.asarray(params).tolist()}")
    if next(model.parameters()).dtype != torch.float64:  # evaluate in float64 without touching the caller's model
        import copy

        model = copy.deepcopy(model).double()
    with torch.no_grad():
        k, b = model.kind_coefficients(p)
    b = b[0].numpy() if model.anharmonic else np.zeros((k.shape[1], 0))
    return k[0].numpy().astype(np.float64), b.astype(np.float64)


def _custom_forces(model, k, b, topo):
    """Custom bond and angle forces of the anharmonic model (one per-interaction parameter set)."""
    import openmm

    from cgsurrogate.surrogate.gcn.potential import ANGLE_SCALES, BOND_SCALES

    M = b.shape[1]

    def expression(var, ref, scales):
        corr = " + ".join(f"b{m}*tanh(q/{scales[m]!r})" for m in range(M))
        return f"k*q*exp(min(30, max(-30, {corr}))); q=({var}-{ref})^2"

    bond = openmm.CustomBondForce(expression("r", "r0", BOND_SCALES))
    angle = openmm.CustomAngleForce(expression("theta", "theta0", ANGLE_SCALES))
    for f, ref in ((bond, "r0"), (angle, "theta0")):
        for name in ("k", *[f"b{m}" for m in range(M)], ref):
            f.addPerBondParameter(name) if f is bond else f.addPerAngleParameter(name)
    kind = model.geometry.kind.numpy()
    nb = len(topo.bonds)
    for i, (a0, a1) in enumerate(topo.bonds.tolist()):
        kk = kind[i]
        bond.addBond(a0, a1, [float(k[kk]), *b[kk].tolist(), float(topo.bond_r0[i])])
    for j, (a0, a1, a2) in enumerate(topo.angles.tolist()):
        kk = kind[nb + j]
        angle.addAngle(a0, a1, a2, [float(k[kk]), *b[kk].tolist(), float(topo.angle_theta0[j])])
    return bond, angle


def export_openmm_system(model, params, clamp_nodes=None, load_nodes=None, load_force=None, mass=None):
    """The surrogate at strengths ``params`` as an OpenMM ``System`` of native forces (exact).

    Parameters
    ----------
    model : InvariantPotential (any tube length: its ``topology`` is used)
    params : array [5] zJ, the strengths
    clamp_nodes, load_nodes, load_force, mass : as :func:`cgsurrogate.simulate.openmm_system.build_microtubule_system`
        (defaults: first two rings clamped, last two loaded with the protocol's load, the monomer mass)

    Returns
    -------
    system : openmm.System (one replica; force groups: bonds 0, angles 1, load 2)
    info : SystemInfo of the engine, with ``info.params`` the strengths and ``surrogate_k`` added
        (the 7 kind stiffnesses, kJ/mol per nm^2 or rad^2, in the model's ``E = k q`` convention)
    """
    from cgsurrogate.core.errors import CGSurrogateError
    from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, MONOMER_MASS_AMU
    from cgsurrogate.simulate.openmm_system import ANGLE_GROUP, BOND_GROUP, build_microtubule_system
    from cgsurrogate.surrogate.gcn.potential import InvariantPotential

    if not isinstance(model, InvariantPotential):
        raise CGSurrogateError("only an InvariantPotential exports to native OpenMM forces, "
                               f"got {type(model).__name__}")
    k, b = kind_stiffness(model, params)
    topo = model.topology
    system, info = build_microtubule_system(np.asarray(params, np.float64), topo, clamp_nodes, load_nodes,
                                            LOAD_FORCE_KJMOL_NM if load_force is None else load_force,
                                            MONOMER_MASS_AMU if mass is None else mass)
    forces = {system.getForce(i).getForceGroup(): i for i in range(system.getNumForces())}
    kind = model.geometry.kind.numpy()
    nb = len(topo.bonds)
    if not model.anharmonic:
        bonds = system.getForce(forces[BOND_GROUP])
        angles = system.getForce(forces[ANGLE_GROUP])
        for i in range(bonds.getNumBonds()):
            a0, a1, r0, _ = bonds.getBondParameters(i)
            bonds.setBondParameters(i, a0, a1, r0, 2.0 * float(k[kind[i]]))
        for j in range(angles.getNumAngles()):
            a0, a1, a2, th0, _ = angles.getAngleParameters(j)
            angles.setAngleParameters(j, a0, a1, a2, th0, 2.0 * float(k[kind[nb + j]]))
    else:
        bond, angle = _custom_forces(model, k, b, topo)
        bond.setForceGroup(BOND_GROUP), angle.setForceGroup(ANGLE_GROUP)
        for idx in sorted((forces[BOND_GROUP], forces[ANGLE_GROUP]), reverse=True):
            system.removeForce(idx)
        system.addForce(bond), system.addForce(angle)
    info.surrogate_k = k
    return system, info


__all__ = ["kind_stiffness", "export_openmm_system"]
