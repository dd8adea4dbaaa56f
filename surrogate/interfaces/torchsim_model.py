"""An energy model as a TorchSim model: many strength sets relax (batched FIRE) or run at once.

:class:`TorchSimEnergyModel` wraps any callable with :class:`cgsurrogate.simulate.energy.TrueEnergy`'s
call signature, ``energy(positions [B, N, 3] nm, params [B, P]) -> (total [B], per_node [B, N])``
kJ/mol (the exact field, a GCN-family surrogate, the EGHN energy head), as a
``torch_sim.models.interface.ModelInterface``. One TorchSim state holds many systems; system
``s`` uses strength row ``params[s]`` (or the single row for all). The protocol is part of
the model:

* **load**: each load node feels ``load_scale * load_force`` (energy ``-load_scale * load_force . x``
  per load node, included in the returned energy); set ``model.load_scale`` (0..1) to ramp it;
* **clamps**: forces on clamp nodes are zero, so TorchSim's integrators and FIRE keep them fixed.

Clamp and load nodes and the load come from the energy model's ``system_spec``
(:class:`cgsurrogate.core.system_spec.SystemSpec`), or from a spec given here. Units are the
project's (nm, kJ/mol, amu): TorchSim's integrators take ``kT`` and ``dt`` in the units of
the model, so give them in kJ/mol and in ``nm sqrt(amu / (kJ/mol))`` (= 1 ps).

Requires the ``[torchsim]`` extra (``torch-sim-atomistic``).
"""
from __future__ import annotations

import torch

from cgsurrogate.core.errors import CGSurrogateError, require_extra

_ts_interface = require_extra("torch_sim.models.interface", "torchsim", "the TorchSim model interface")


def _spec_of(energy):
    spec = getattr(energy, "system_spec", None)
    if spec is None and hasattr(energy, "topology"):
        from cgsurrogate.simulate.microtubule import tube_system_spec

        spec = tube_system_spec(energy.topology)
    return spec


class TorchSimEnergyModel(_ts_interface.ModelInterface):
    """A TorchSim ``ModelInterface`` for an energy model with clamps and a (ramped) load.

    Parameters
    ----------
    energy : callable or dict
        ``energy(positions [B, N, 3], params [B, P]) -> (total [B], per_node [B, N])`` kJ/mol;
        default the exact :class:`~cgsurrogate.simulate.energy.TrueEnergy` of the microtubule.
        A dict ``{N: energy}`` serves states whose systems have different particle counts.
    params : array [P] or [S, P]
        Strength parameters (zJ): one row for every system, or one row per system of the states
        this model will see.
    system_spec : SystemSpec or dict {N: SystemSpec}, optional
        Clamp nodes, load nodes and load force; default ``energy.system_spec`` (or the tube spec
        of ``energy.topology``); with neither, nothing is clamped or loaded.
    load_scale : float
        Fraction of the full load applied (0..1; the ramp).
    device, dtype : torch device and dtype of the outputs (default CPU, float64).
    """

    def __init__(self, energy=None, params=None, system_spec=None, load_scale: float = 1.0,
                 device=None, dtype: torch.dtype = torch.float64):
        super().__init__()
        if energy is None:
            from cgsurrogate.simulate.energy import TrueEnergy

            energy = TrueEnergy()
        members = energy if isinstance(energy, dict) else {None: energy}
        self._device = torch.device(device or "cpu")
        self._dtype = dtype
        self._compute_forces = True
        self._compute_stress = False
        self._memory_scales_with = "n_atoms"
        self.energies = torch.nn.ModuleDict()
        self._nodes = {}
        for n, fn in members.items():
            spec = system_spec.get(n) if isinstance(system_spec, dict) else system_spec
            spec = spec or _spec_of(fn)
            count = int(n) if n is not None else (spec.num_particles if spec is not None else None)
            if count is None:
                raise CGSurrogateError("energy model: give a system_spec (particle count) or a dict {N: energy}")
            if isinstance(fn, torch.nn.Module):
                self.energies[str(count)] = fn.to(self._device)
            clamp = torch.as_tensor(list(spec.clamp_nodes) if spec else [], dtype=torch.long)
            load = torch.as_tensor(list(spec.load_nodes) if spec else [], dtype=torch.long)
            force = torch.as_tensor(spec.load_force if spec else (0.0, 0.0, 0.0), dtype=torch.float64)
            for name, idx in (("clamp", clamp), ("load", load)):
                if idx.numel() and (idx.min() < 0 or idx.max() >= count):
                    raise CGSurrogateError(f"{name} nodes must lie in 0..{count - 1}")
            self._nodes[count] = (fn, clamp.to(self._device), load.to(self._device), force.to(self._device, dtype))
        if params is None:
            params = [30.0] * 5
        p = torch.as_tensor(params, dtype=torch.float64)
        if p.dim() == 1:
            p = p[None]
        if p.dim() != 2 or p.shape[0] < 1 or not torch.isfinite(p).all():
            raise CGSurrogateError(f"params: expected finite [P] or [S, P] strengths, got shape {tuple(p.shape)}")
        self.params = p.to(self._device)
        self.load_scale = float(load_scale)

    def forward(self, state, **kwargs) -> dict:
        """Energies ``[n_systems]`` (kJ/mol, load included) and forces ``[n_atoms, 3]`` (kJ/mol/nm).

        ``state``: a ``torch_sim.SimState`` (positions ``[n_atoms, 3]`` nm, ``system_idx``
        ``[n_atoms]``) or a dict with those keys. Inputs are not modified.
        """
        if isinstance(state, dict):
            pos, sidx = state["positions"], state.get("system_idx")
        else:
            pos, sidx = state.positions, state.system_idx
        if sidx is None:
            sidx = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        if not torch.isfinite(pos).all():
            raise CGSurrogateError("TorchSim state: positions hold NaN or infinity")
        n_sys = int(sidx.max()) + 1 if sidx.numel() else 0
        counts = torch.bincount(sidx, minlength=n_sys)
        if n_sys > 1 and self.params.shape[0] not in (1, n_sys):
            raise CGSurrogateError(
                f"params has {self.params.shape[0]} rows for a state of {n_sys} systems (give 1 or {n_sys})")
        x = pos.detach().to(self._device, torch.float64).clone().requires_grad_(True)
        energy = torch.zeros(n_sys, dtype=torch.float64, device=self._device)
        with torch.enable_grad():
            for n in counts.unique().tolist():
                if n not in self._nodes:
                    raise CGSurrogateError(f"TorchSim state: a system of {n} particles; the model serves "
                                           f"{sorted(self._nodes)}")
                fn, clamp, load, force = self._nodes[n]
                systems = torch.nonzero(counts == n).flatten()
                atoms = torch.cat([torch.nonzero(sidx == s).flatten() for s in systems.tolist()])
                xb = x[atoms].view(len(systems), n, 3)
                pb = self.params[systems] if self.params.shape[0] > 1 else self.params.expand(len(systems), -1)
                total, _ = fn(xb, pb)
                if load.numel():
                    total = total - self.load_scale * (xb[:, load] @ force.to(torch.float64)).sum(-1)
                energy = energy.index_add(0, systems.to(self._device), total.to(torch.float64))
            (grad,) = torch.autograd.grad(energy.sum(), x)
        forces = -grad
        for n, (_, clamp, _, _) in self._nodes.items():
            if clamp.numel():
                for s in torch.nonzero(counts == n).flatten().tolist():
                    start = int(torch.nonzero(sidx == s)[0])
                    forces[start + clamp] = 0.0
        return {"energy": energy.detach().to(self._dtype), "forces": forces.detach().to(self._dtype)}


def microtubule_state(num_systems: int = 1, positions=None, device=None, dtype: torch.dtype = torch.float64):
    """A TorchSim ``SimState`` of ``num_systems`` microtubules (resting geometry by default).

    Parameters
    ----------
    positions : array [S, N, 3] or [N, 3] nm, optional
    Returns a non-periodic state with masses in amu (50 ag per monomer); ``atomic_numbers`` are
    placeholders (6) that no energy model here reads.
    """
    import torch_sim as ts

    from cgsurrogate.simulate.microtubule import MONOMER_MASS_AMU, microtubule_topology

    topo = microtubule_topology()
    x = torch.as_tensor(topo.positions if positions is None else positions, dtype=dtype, device=device)
    if x.dim() == 2:
        x = x[None].expand(num_systems, -1, -1)
    S, N = x.shape[:2]
    return ts.SimState(
        positions=x.reshape(S * N, 3).clone(),
        masses=torch.full((S * N,), MONOMER_MASS_AMU, dtype=dtype, device=device),
        cell=torch.eye(3, dtype=dtype, device=device)[None].repeat(S, 1, 1) * 1e4,
        pbc=False,
        atomic_numbers=torch.full((S * N,), 6, dtype=torch.long, device=device),
        system_idx=torch.arange(S, device=device).repeat_interleave(N),
    )
