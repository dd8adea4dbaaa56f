"""A trained GCN-family surrogate as a differentiable torch energy function.

:class:`SurrogateEnergy` wraps a model that maps normalised node features
``x [B, N, F]`` to normalised per-node energies ``[B, N, 1]`` (every model of
``cgsurrogate.surrogate.gcn.registry`` does) together with its normalisation statistics and the
system's :class:`~cgsurrogate.core.system_spec.SystemSpec`. It is an
:class:`~cgsurrogate.core.energy_model.EnergyModel`, so it has the call signature of
:class:`cgsurrogate.simulate.energy.TrueEnergy`::

    total [B], per_node [B, N] = energy(positions [B, N, 3] nm, params [B, P], velocities=None)

and optimisers, the ASE calculator (:mod:`cgsurrogate.surrogate.interfaces.ase_calculator`), the
OpenMM force (:mod:`cgsurrogate.surrogate.interfaces.openmm_force`) and the prediction API
(:mod:`cgsurrogate.surrogate.interfaces.prediction`) accept either. Forces come from autograd
(:func:`energy_and_forces`, from :mod:`cgsurrogate.core.energy_model`); the paper's dE/dX
back-propagation rule (Scott & Mjolsness 2021, sec. 5.1.1) is what autograd computes through
the prolongation matrices.

Input features follow the training data: columns 0-2 position (nm), 3-5 velocity (nm/ps, zero
when not given), then the ``P`` strength parameters of the spec. Energies are kJ/mol, forces
kJ/mol/nm.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from cgsurrogate.core.energy_model import EnergyModel, energy_and_forces
from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.core.system_spec import SystemSpec

#: Number of position and velocity columns in front of the parameter columns.
POS_VEL_COLUMNS = 6


class SurrogateEnergy(EnergyModel):
    """Per-particle energy predicted by a trained GCN-family surrogate, in physical units.

    Parameters
    ----------
    model : nn.Module
        Maps normalised features ``[B, N, F]`` to normalised energies ``[B, N, 1]``.
    x_mean, x_std : Tensor [N, F]
        Per-node, per-feature input statistics (``x_n = (x - mean) / std``), ``F = 6 + P``.
    y_mean, y_std : Tensor [N, 1]
        Per-node output statistics in kJ/mol (``y = y_n * std + mean``).
    info : dict, optional
        Plain-python description kept for users (model name, units, dataset, metrics).
    system_spec : SystemSpec or dict, optional
        The system (a checkpoint carries it). Without one, a minimal spec of ``N`` particles
        and ``P`` parameters named ``p0 ...`` (unit masses, nothing clamped) is used.

    Notes
    -----
    The network runs in the dtype and on the device of the module (float32 on the CPU
    after :func:`load_surrogate` unless asked otherwise; use ``.double()`` or
    ``.to("cuda")`` like any module). The normalisation itself is always done in float64:
    near the clamped rings the positions' standard deviation is ~1e-3 nm, below what
    float32 resolves at 100 nm. Inputs are moved to the module's device; outputs stay
    there and come back in the dtype of ``positions``. Takes velocities and per-node
    parameters ``[B, N, P]``; not invariant to rotations or translations (raw positions
    are features).
    """

    takes_velocities = True
    per_particle_params = True
    _STATS = ("x_mean", "x_inv_std", "y_mean", "y_std")

    def __init__(self, model: nn.Module, x_mean, x_std, y_mean, y_std, info: dict | None = None,
                 system_spec=None):
        x_mean = torch.as_tensor(x_mean)
        x_std = torch.as_tensor(x_std)
        if x_mean.dim() != 2 or x_std.shape != x_mean.shape:
            raise CGSurrogateError(
                f"normaliser statistics have shapes {tuple(x_mean.shape)} and {tuple(x_std.shape)}, "
                "expected two equal [N, F]"
            )
        N, F = int(x_mean.shape[0]), int(x_mean.shape[1])
        if F <= POS_VEL_COLUMNS:
            raise CGSurrogateError(f"normaliser has {F} features; need positions, velocities and parameters")
        if system_spec is None:
            system_spec = SystemSpec.minimal(N, F - POS_VEL_COLUMNS)
        super().__init__(system_spec)
        if (self.num_nodes, self.num_params) != (N, F - POS_VEL_COLUMNS):
            raise CGSurrogateError(
                f"system spec {self.system_spec.name!r} has {self.num_nodes} particles and {self.num_params} "
                f"parameters, the normaliser {N} nodes and {F - POS_VEL_COLUMNS} parameter columns"
            )
        self.model = model
        y_mean = torch.as_tensor(y_mean).reshape(N, 1)
        y_std = torch.as_tensor(y_std).reshape(N, 1)
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

    @classmethod
    def from_normalizer(cls, model: nn.Module, normalizer, info: dict | None = None,
                        system_spec=None) -> "SurrogateEnergy":
        """Build from a model and a fitted ``cgsurrogate.data.microtubule.Normalizer``.

        The normaliser is an affine map per node and feature; its mean and standard
        deviation are read from its attributes when it has them (``x_mean``, ``x_std``,
        ``y_mean``, ``y_std``) and otherwise recovered exactly from ``normalize_x`` /
        ``denormalize_y`` applied to zeros and ones in float64.
        """
        stats = _normalizer_stats(normalizer)
        return cls(model, *stats, info=info, system_spec=system_spec)

    def features(self, positions, params, velocities=None) -> torch.Tensor:
        """Unnormalised model input ``[B, N, F]`` (float64) from positions, parameters, velocities.

        Parameters
        ----------
        positions : Tensor [B, N, 3] nm
        params : Tensor [B, P] or [P] (one set per configuration) or [B, N, P] (per node), zJ
        velocities : Tensor [B, N, 3] nm/ps, optional (zero when omitted)
        """
        x, p, v, _, _ = self.check_inputs(positions, params, velocities)
        return self._features(x, p, v)

    def _features(self, x, p, v) -> torch.Tensor:
        B, N = x.shape[0], x.shape[1]
        vel = x.new_zeros(B, N, 3) if v is None else v
        if p.dim() == 2:
            p = p[:, None, :].expand(B, N, p.shape[-1])
        return torch.cat([x, vel, p], dim=-1)

    def energy_per_particle(self, positions, params, velocities=None) -> torch.Tensor:
        """Per-particle energies ``[B, N]`` kJ/mol (float64) of checked float64 inputs."""
        x = self._features(positions, params, velocities)
        xn = (x - self.x_mean) * self.x_inv_std
        yn = self.model(xn.to(self.dtype))
        if yn.dim() == 2:
            yn = yn[..., None]
        return (yn.double() * self.y_std + self.y_mean)[..., 0]


def check_device(device, where: str = "device") -> torch.device | None:
    """``device`` as a ``torch.device`` (None stays None); a CUDA device on a machine without CUDA,
    or an unknown name, raises :class:`CGSurrogateError`."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise CGSurrogateError(f"{where}: {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CGSurrogateError(f"{where}: {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CGSurrogateError(f"{where}: {device!r} requested but only {torch.cuda.device_count()} CUDA devices exist")
    return dev


def load_surrogate(path, device=None, dtype: torch.dtype = torch.float32) -> EnergyModel:
    """Load a surrogate checkpoint (``cgsurrogate.surrogate.checkpoint``) as an energy model.

    GCN/GPCN-family checkpoints give a :class:`SurrogateEnergy`; EGHN energy checkpoints
    (kind and ``model_name`` ``"eghn-energy"``, written by ``cgsurrogate.surrogate.equivariant.energy_head``)
    give an ``EGHNMicrotubuleEnergy``. Both are :class:`~cgsurrogate.core.energy_model.EnergyModel`
    with the checkpoint's ``system_spec``, ``num_nodes`` and ``info``.

    Parameters
    ----------
    path : str or Path
        The checkpoint file (read with ``torch.load(weights_only=True)``), or the name of a
        shipped model (``"microtubule-invariant"``: the invariant potential,
        :mod:`cgsurrogate.surrogate.gcn.potential`, also the kind ``"invariant-potential"``).
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
    InputFileError (a CGSurrogateError and FileNotFoundError)
        A missing, corrupt, foreign or old-format file, with a one-line message naming it.
    CGSurrogateError
        A bad ``dtype`` or an unavailable ``device``.
    """
    from cgsurrogate.surrogate.checkpoint import MODEL_KINDS, load_checkpoint, rebuild_model

    from cgsurrogate.surrogate.gcn.potential import maybe_load_potential
    from cgsurrogate.surrogate.pretrained import resolve_pretrained

    path = Path(os.fspath(resolve_pretrained(path)))  # shipped names, e.g. "microtubule-invariant"
    if dtype not in (torch.float32, torch.float64):
        raise CGSurrogateError(f"{path}: dtype must be torch.float32 or torch.float64, got {dtype}")
    dev = check_device(device)
    potential = maybe_load_potential(path)  # invariant potential (surrogate.gcn.potential)
    if potential is not None:
        potential = potential.to(dtype=dtype)
        return (potential.to(dev) if dev is not None else potential).eval()
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
    try:
        if ckpt["kind"] == MODEL_KINDS["eghn-energy"]:  # EGHN energy head (surrogate.equivariant.energy_head)
            from cgsurrogate.surrogate.equivariant.energy_head import energy_from_checkpoint

            energy = energy_from_checkpoint(ckpt, info=info)
        else:
            model, normalizer, _hierarchy = rebuild_model(ckpt)
            energy = SurrogateEnergy.from_normalizer(model, normalizer, info=info, system_spec=ckpt["system_spec"])
    except ValueError as exc:  # CGSurrogateError included: name the file
        msg = str(exc)
        raise InputFileError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    energy = energy.to(dtype=dtype)
    if dev is not None:
        energy = energy.to(dev)
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
        if isinstance(v, torch.Tensor) and v.dim() == 2 and v.shape[1] > POS_VEL_COLUMNS:
            shape = tuple(v.shape)
            break
    if shape is None:
        raise CGSurrogateError("normaliser: cannot find its [N, F] input statistics")
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


__all__ = ["SurrogateEnergy", "load_surrogate", "energy_and_forces", "check_device", "POS_VEL_COLUMNS"]
