"""The relaxation objective: internal energy plus the potential of a constant load, under clamps.

    E(X) = E_internal(X; params) - sum_{i in loaded} F . (x_i - x_i^rest)

in kJ/mol with positions in nm and forces in kJ/mol/nm. Every call of
:class:`LoadedEnergy` (energy and gradient of the full fine structure) is counted: it is the
cost measure of the relaxation benchmark (``bench/relax.py``).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError

class NonFiniteEnergyError(CGSurrogateError, FloatingPointError):
    """The energy model returned NaN or infinity during a relaxation (also a ``FloatingPointError``)."""


class LoadedEnergy:
    """Energy of a structure under clamps and a constant external load, with an evaluation counter.

    Parameters
    ----------
    energy_fn : callable
        ``energy_fn(positions [1, N, 3] nm, params [1, 5] zJ) -> (total [1], per_node [1, N])``
        in kJ/mol: :class:`cgsurrogate.simulate.energy.TrueEnergy` or
        ``cgsurrogate.surrogate.interfaces.energy_function.SurrogateEnergy``.
    params : array-like [5]
        Strength parameters (zJ/nm^2, zJ/rad^2).
    reference : Tensor [N, 3]
        Resting positions (nm); the load's potential is measured from them.
    clamp_nodes : array-like of int
        Nodes held fixed (their gradient is zeroed and they are never moved).
    load_nodes : array-like of int
        Nodes carrying the constant force.
    load_force : float
        Magnitude of the force on each loaded node (kJ/mol/nm).
    load_direction : sequence of 3 floats
        Direction of the force (normalised here); the protocol bends in ``-y``.
    """

    def __init__(
        self,
        energy_fn: Callable,
        params,
        reference: torch.Tensor,
        clamp_nodes=(),
        load_nodes=(),
        load_force: float = 0.0,
        load_direction=(0.0, -1.0, 0.0),
    ):
        self.energy_fn = energy_fn
        self.reference = torch.as_tensor(reference, dtype=torch.float64)
        n = self.reference.shape[0]
        self.num_nodes = n
        self.params = torch.as_tensor(np.asarray(params, dtype=np.float64)).reshape(1, -1)
        self.clamp_nodes = _node_index(clamp_nodes, n, "clamp")
        self.load_nodes = _node_index(load_nodes, n, "load")
        self.free = torch.ones(n, dtype=torch.bool)
        self.free[self.clamp_nodes] = False
        d = torch.as_tensor(np.asarray(load_direction, dtype=np.float64))
        if d.shape != (3,) or not torch.isfinite(d).all() or float(d.norm()) == 0:
            raise CGSurrogateError(f"load direction {tuple(load_direction)} is not a nonzero 3-vector")
        if not math.isfinite(load_force):
            raise CGSurrogateError(f"load force {load_force} is not finite")
        self.load_force = float(load_force)
        self.load_direction = d / d.norm()
        self.force = torch.zeros(n, 3, dtype=torch.float64)
        self.force[self.load_nodes] = self.load_force * self.load_direction
        self.evals = 0

    def __call__(self, x: torch.Tensor):
        """Energy and gradient at ``x``.

        Parameters
        ----------
        x : Tensor [N, 3] float64, nm

        Returns
        -------
        energy : float, kJ/mol (internal + load potential)
        grad : Tensor [N, 3] float64, kJ/mol/nm, zero on clamped nodes
        """
        self.evals += 1
        xr = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            total, _ = self.energy_fn(xr[None], self.params.to(xr.dtype))
            e_int = total.reshape(-1)[0]
            (g,) = torch.autograd.grad(e_int, xr)
        g = g.to(torch.float64)
        e = float(e_int.detach()) - float((self.force * (x - self.reference)).sum())
        g = g - self.force
        g[~self.free] = 0.0
        if not math.isfinite(e) or not torch.isfinite(g).all():
            raise NonFiniteEnergyError(
                f"evaluation {self.evals}: the energy or its gradient is not finite (E = {e}); the model "
                "has no finite energy at this structure (a surrogate far off its training data?)")
        return e, g

    def parts(self, x: torch.Tensor):
        """Energy terms at ``x`` without counting an evaluation.

        Returns
        -------
        dict with ``energy`` (kJ/mol, internal + load), ``internal`` (kJ/mol),
        ``load`` (kJ/mol, ``-sum F . (x - x_rest)``), ``per_node`` (ndarray [N] kJ/mol,
        internal energy split per node) and ``fmax`` (kJ/mol/nm, largest per-node
        gradient norm on free nodes).
        """
        xr = x.detach().clone().to(torch.float64).requires_grad_(True)
        with torch.enable_grad():
            total, per_node = self.energy_fn(xr[None], self.params)
            (g,) = torch.autograd.grad(total.reshape(-1)[0], xr)
        g = g.to(torch.float64) - self.force
        g[~self.free] = 0.0
        e_load = -float((self.force * (x - self.reference)).sum())
        e_int = float(total.detach().reshape(-1)[0])
        return {
            "energy": e_int + e_load,
            "internal": e_int,
            "load": e_load,
            "per_node": per_node.detach().reshape(-1).to(torch.float64).numpy(),
            "fmax": float(g.norm(dim=1).max()),
        }


def _node_index(nodes, n: int, what: str) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(nodes, dtype=np.int64).reshape(-1))
    if len(idx) and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise CGSurrogateError(f"{what} node index out of range for a structure of {n} nodes")
    return torch.remainder(idx, n) if len(idx) else idx



def default_boundary(topology) -> tuple[np.ndarray, np.ndarray]:
    """Clamped and loaded nodes of the bending protocol.

    Parameters
    ----------
    topology : cgsurrogate.simulate.microtubule.Topology

    Returns
    -------
    clamp_nodes : ndarray int (the first two turns; 26 nodes for the microtubule)
    load_nodes : ndarray int (the last two turns)
    """
    return topology.ring_nodes([0, 1]), topology.ring_nodes([-2, -1])
