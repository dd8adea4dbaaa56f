"""A trained surrogate as a differentiable torch energy function.

:class:`SurrogateEnergy` wraps a model that maps normalised node features
``x [B, N, F]`` to normalised per-node energies ``[B, N, 1]`` (every model of
``cgsurrogate.surrogate.gcn.registry`` does) together with its normalisation statistics, and exposes
the call signature of :class:`cgsurrogate.simulate.energy.TrueEnergy`::

    total [B], per_node [B, N] = energy(positions [B, N, 3] nm, params [B, 5] zJ)

so optimisers, the ASE calculator (:mod:`cgsurrogate.surrogate.interfaces.ase_calculator`), the OpenMM force
(:mod:`cgsurrogate.surrogate.interfaces.openmm_force`) and the prediction API (:mod:`cgsurrogate.surrogate.interfaces.prediction`)
accept either. Forces come from autograd (:func:`energy_and_forces`); the paper's
dE/dX back-propagation rule (Scott & Mjolsness 2021, sec. 5.1.1) is what autograd
computes through the prolongation matrices.

Input features follow the training data (``cgsurrogate.data.microtubule``): columns 0-2 position
(nm), 3-5 velocity (nm/ps, zero when not given), 6.. the strength parameters (zJ).
Energies are kJ/mol, forces kJ/mol/nm.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

#: Number of position and velocity columns in front of the parameter columns.
_POS_VEL = 6


class SurrogateEnergy(nn.Module):
    """Per-particle energy predicted by a trained surrogate, in physical units.

    Parameters
    ----------
    model : nn.Module
        Maps normalised features ``[B, N, F]`` to normalised energies ``[B, N, 1]``.
    x_mean, x_std : Tensor [N, F]
        Per-node, per-feature input statistics (``x_n = (x - mean) / std``).
    y_mean, y_std : Tensor [N, 1]
        Per-node output statistics in kJ/mol (``y = y_n * std + mean``).
    info : dict, optional
        Plain-python description kept for users (model name, units, dataset, metrics).

    Notes
    -----
    The network runs in the dtype and on the device of the module (float32 on the CPU
    after :func:`load_surrogate` unless asked otherwise; use ``.double()`` or
    ``.to("cuda")`` like any module). The normalisation itself is always done in float64:
    near the clamped rings the positions' standard deviation is ~1e-3 nm, below what
    float32 resolves at 100 nm. Inputs are moved to the module's device; outputs stay
    there and come back in the dtype of ``positions``.
    """

    _STATS = ("x_mean", "x_inv_std", "y_mean", "y_std")

    def __init__(self, model: nn.Module, x_mean, x_std, y_mean, y_std, info: dict | None = None):
        super().__init__()
        self.model = model
        x_mean = torch.as_tensor(x_mean)
        x_std = torch.as_tensor(x_std)
        y_mean = torch.as_tensor(y_mean).reshape(x_mean.shape[0], 1)
        y_std = torch.as_tensor(y_std).reshape(x_mean.shape[0], 1)
        if x_mean.dim() != 2 or x_std.shape != x_mean.shape:
            raise ValueError(
                f"normaliser statistics have shapes {tuple(x_mean.shape)} and {tuple(x_std.shape)}, "
                "expected two equal [N, F]"
            )
        if x_mean.shape[1] <= _POS_VEL:
            raise ValueError(f"normaliser has {x_mean.shape[1]} features; need positions, velocities and parameters")
        self.register_buffer("x_mean", x_mean.double())
        self.register_buffer("x_inv_std", 1.0 / x_std.double())
        self.register_buffer("y_mean", y_mean.double())
        self.register_buffer("y_std", y_std.double())
        self.info = dict(info or {})
        self.model.eval()

    def _apply(self, fn, recurse=True):
        # Move the statistics with the module but keep them float64 (and unrounded).
        stats = {name: self._buffers[name] for name in self._STATS}
        super()._apply(fn, recurse)
        for name, t in stats.items():
            self._buffers[name] = t.to(device=fn(t[:0]).device)
        return self

    @property
    def dtype(self) -> torch.dtype:
        """Dtype the network computes in."""
        return _module_dtype(self.model)

    @property
    def num_nodes(self) -> int:
        """Number of particles ``N`` the model was trained on."""
        return int(self.x_mean.shape[0])

    @property
    def num_params(self) -> int:
        """Number of strength-parameter columns (5 for the microtubule)."""
        return int(self.x_mean.shape[1]) - _POS_VEL

    @classmethod
    def from_normalizer(cls, model: nn.Module, normalizer, info: dict | None = None) -> "SurrogateEnergy":
        """Build from a model and a fitted ``cgsurrogate.data.microtubule.Normalizer``.

        The normaliser is an affine map per node and feature; its mean and standard
        deviation are read from its attributes when it has them (``x_mean``, ``x_std``,
        ``y_mean``, ``y_std``) and otherwise recovered exactly from ``normalize_x`` /
        ``denormalize_y`` applied to zeros and ones in float64.
        """
        stats = _normalizer_stats(normalizer)
        return cls(model, *stats, info=info)

    def features(self, positions: torch.Tensor, params: torch.Tensor, velocities=None) -> torch.Tensor:
        """Unnormalised model input ``[B, N, F]`` (float64) from positions, parameters, velocities.

        Parameters
        ----------
        positions : Tensor [B, N, 3] nm
        params : Tensor [B, P] or [P] (one set per configuration) or [B, N, P] (per node), zJ
        velocities : Tensor [B, N, 3] nm/ps, optional (zero when omitted)
        """
        B, N = positions.shape[0], positions.shape[1]
        dtype, device = torch.float64, self.x_mean.device
        pos = positions.to(dtype=dtype, device=device)
        if velocities is None:
            vel = pos.new_zeros(B, N, 3)
        else:
            vel = torch.as_tensor(velocities).to(dtype=dtype, device=device)
            if vel.dim() == 2:
                vel = vel[None]
            if vel.shape != (B, N, 3):
                raise ValueError(f"velocities have shape {tuple(vel.shape)}, expected [{B}, {N}, 3]")
        p = torch.as_tensor(params).to(dtype=dtype, device=device)
        P = self.num_params
        if p.dim() == 1:
            p = p[None]
        if p.dim() == 2:
            if p.shape[0] == 1 and B > 1:
                p = p.expand(B, -1)
            if p.shape != (B, P):
                raise ValueError(f"params have shape {tuple(p.shape)}, expected [{B}, {P}] (zJ)")
            p = p[:, None, :].expand(B, N, P)
        elif p.dim() != 3 or p.shape != (B, N, P):
            raise ValueError(f"params have shape {tuple(p.shape)}, expected [{B}, {P}] or [{B}, {N}, {P}]")
        return torch.cat([pos, vel, p], dim=-1)

    def forward(self, positions: torch.Tensor, params: torch.Tensor, velocities=None):
        """Total and per-particle energy.

        Parameters
        ----------
        positions : Tensor [B, N, 3] or [N, 3]
            Coordinates in nm.
        params : Tensor [B, 5], [5] or per-node [B, N, 5]
            Strength parameters in zJ/nm^2 and zJ/rad^2 (order ``PARAM_NAMES``).
        velocities : Tensor [B, N, 3] or [N, 3], optional
            nm/ps; zero when omitted (the models take velocities as input).

        Returns
        -------
        total : Tensor [B] (scalar for unbatched input), kJ/mol
        per_node : Tensor [B, N] (or [N]), kJ/mol; sums to ``total``.
        """
        positions = torch.as_tensor(positions)
        squeeze = positions.dim() == 2
        if squeeze:
            positions = positions[None]
            params = torch.as_tensor(params)
            if params.dim() == 2 and params.shape[0] == positions.shape[1]:
                params = params[None]
        if positions.dim() != 3 or positions.shape[-2:] != (self.num_nodes, 3):
            raise ValueError(
                f"positions have shape {tuple(positions.shape)}, expected [B, {self.num_nodes}, 3]"
            )
        x = self.features(positions, params, velocities)
        xn = (x - self.x_mean) * self.x_inv_std
        yn = self.model(xn.to(self.dtype))
        if yn.dim() == 2:
            yn = yn[..., None]
        per_node = (yn.double() * self.y_std + self.y_mean)[..., 0]
        if positions.dtype.is_floating_point and per_node.dtype != positions.dtype:
            per_node = per_node.to(positions.dtype)
        total = per_node.sum(-1)
        if squeeze:
            return total[0], per_node[0]
        return total, per_node


def energy_and_forces(energy: nn.Module, positions, params, velocities=None, *, create_graph: bool = False):
    """Energies and forces ``-dE/dx`` of any module with ``TrueEnergy``'s signature.

    Parameters
    ----------
    energy : nn.Module
        ``SurrogateEnergy``, ``cgsurrogate.simulate.energy.TrueEnergy`` or any module
        ``(positions [B, N, 3] nm, params) -> (total [B], per_node [B, N]) kJ/mol``.
    positions : Tensor [B, N, 3] or [N, 3], nm
    params : Tensor [B, 5] or [5], zJ
    velocities : Tensor like ``positions``, nm/ps, optional (passed only when given)
    create_graph : bool
        Keep the graph of the forces (for higher derivatives).

    Returns
    -------
    total : Tensor [B] (or scalar), kJ/mol
    per_node : Tensor [B, N] (or [N]), kJ/mol
    forces : Tensor like ``positions``, kJ/mol/nm
    """
    x = torch.as_tensor(positions)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        if velocities is None:
            total, per_node = energy(x, params)
        else:
            total, per_node = energy(x, params, velocities=velocities)
        (grad,) = torch.autograd.grad(total.sum(), x, create_graph=create_graph)
    if not create_graph:
        total, per_node = total.detach(), per_node.detach()
    return total, per_node, -grad


def load_surrogate(path, device=None, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a checkpoint written by ``cgsurrogate.surrogate.checkpoint.save_checkpoint``.

    GCN/GPCN-family checkpoints give a :class:`SurrogateEnergy`; EGHN energy checkpoints
    (``model_name == "eghn-energy"``, written by ``cgsurrogate.surrogate.equivariant.energy_head``) give an
    ``EGHNMicrotubuleEnergy``. Both have ``TrueEnergy``'s call signature, ``num_nodes`` and ``info``.

    Parameters
    ----------
    path : str or Path
        The checkpoint file (read with ``torch.load(weights_only=True)``).
    device : str or torch.device, optional
        Where to put the model (default CPU).
    dtype : torch.dtype
        float32 (default) or float64.

    Returns
    -------
    SurrogateEnergy or EGHNMicrotubuleEnergy
        In eval mode; ``.info`` holds the model name, configuration, units, dataset and
        metrics of the checkpoint.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing, corrupt, foreign or too old file, with a one-line message naming it.
    """
    from cgsurrogate.surrogate.checkpoint import load_checkpoint, rebuild_model

    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    ckpt = load_checkpoint(path)
    info = {
        "path": str(path),
        "format_version": ckpt.get("format_version"),
        "model_name": ckpt.get("model_name"),
        "model_config": ckpt.get("model_config"),
        "units": ckpt.get("units"),
        "dataset": ckpt.get("dataset"),
        "metrics": ckpt.get("metrics"),
    }
    if ckpt.get("model_name") == "eghn-energy":  # EGHN energy head (cgsurrogate.surrogate.equivariant.energy_head)
        from cgsurrogate.surrogate.equivariant.energy_head import energy_from_checkpoint

        try:
            energy = energy_from_checkpoint(ckpt, info=info)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    else:
        model, normalizer, _hierarchy = rebuild_model(ckpt)
        energy = SurrogateEnergy.from_normalizer(model, normalizer, info=info)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{path}: dtype must be torch.float32 or torch.float64, got {dtype}")
    energy = energy.to(dtype=dtype)
    if device is not None:
        energy = energy.to(device)
    return energy.eval()


def _module_dtype(model: nn.Module) -> torch.dtype:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.dtype.is_floating_point:
            return t.dtype
    return torch.get_default_dtype()


def _normalizer_stats(normalizer):
    """``(x_mean [N, F], x_std [N, F], y_mean [N, 1], y_std [N, 1])`` float64 of a normaliser."""
    names = ("x_mean", "x_std", "y_mean", "y_std")
    if all(isinstance(getattr(normalizer, n, None), torch.Tensor) for n in names):
        return tuple(getattr(normalizer, n).detach().double().cpu() for n in names)
    sd = normalizer.state_dict() if hasattr(normalizer, "state_dict") else {}
    if all(isinstance(sd.get(n), torch.Tensor) for n in names):
        return tuple(sd[n].detach().double().cpu() for n in names)
    # Recover the affine maps from their action on zeros and ones.
    shape = None
    for v in sd.values():
        if isinstance(v, torch.Tensor) and v.dim() == 2 and v.shape[1] > _POS_VEL:
            shape = tuple(v.shape)
            break
    if shape is None:
        raise ValueError("normaliser: cannot find its [N, F] input statistics")
    N, F = shape
    z = torch.zeros(1, N, F, dtype=torch.float64)
    n0 = torch.as_tensor(normalizer.normalize_x(z)).double()[0]
    n1 = torch.as_tensor(normalizer.normalize_x(z + 1)).double()[0]
    inv = n1 - n0
    x_std = 1.0 / inv
    x_mean = -n0 * x_std
    zy = torch.zeros(1, N, 1, dtype=torch.float64)
    y_mean = torch.as_tensor(normalizer.denormalize_y(zy)).double()[0]
    y_std = torch.as_tensor(normalizer.denormalize_y(zy + 1)).double()[0] - y_mean
    return x_mean, x_std, y_mean, y_std
