"""EGHN with the energy head on the microtubule dataset (same data, split and normaliser as GPCN).

Graph per frame: positions (nm) and velocities (nm/ps) as the equivariant inputs; invariant node
features ``[normalised five strengths, |v| (nm/ps)]``; A_global joins particles within two bonds
(bond and angle partners: the range of the force field), A_local the 1232 bonds. The target is
the normalised per-node energy (``Normalizer.normalize_y``), so the validation metric is the
same NMSE the GPCN trainer reports.

:class:`EGHNMicrotubuleEnergy` wraps a trained model with the call signature of
``cgsurrogate.simulate.energy.TrueEnergy`` (positions [B, N, 3] nm, params [B, 5] zJ -> total [B],
per-node [B, N] kJ/mol), so optimisers and calculators accept it like a GPCN surrogate.

A trained model is saved as an ordinary surrogate checkpoint (``cgsurrogate.surrogate.checkpoint``, model name
``"eghn-energy"``) by :func:`save_energy_checkpoint` (training:
``cgsurrogate.surrogate.train.energy_head_training.train_microtubule_energy``), and
``cgsurrogate.surrogate.interfaces.energy_function.load_surrogate(path)`` returns it as an :class:`EGHNMicrotubuleEnergy`
ready for the ASE calculator, the OpenMM force and the prediction API.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cgsurrogate.core.energy_model import EnergyModel
from cgsurrogate.core.system_spec import SystemSpec
from cgsurrogate.surrogate.equivariant.message_passing import collate_graphs

#: Position and velocity columns in front of the parameters in a raw feature row [6 + P].
POS_VEL = 6
#: ``model_name`` of an EGHN energy checkpoint.
MODEL_NAME = "eghn-energy"


def two_hop_edge_index(bonds: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Directed edges within two bonds and a bond indicator.

    Returns
    -------
    edge_index : LongTensor [2, E];  is_bond : Tensor [E, 1]
    """
    from cgsurrogate.data.mocap import two_hop_edges  # same construction as the skeleton graphs
    ei, is_bond = two_hop_edges(np.asarray(bonds), n)
    return torch.as_tensor(ei), torch.as_tensor(is_bond, dtype=torch.float32).unsqueeze(1)


class MicrotubuleGraphs:
    """Builds EGHN graphs from microtubule samples.

    Parameters
    ----------
    bonds : int array [B, 2]
    num_nodes : int
    normalizer : cgsurrogate.data.microtubule.Normalizer
    """

    def __init__(self, bonds, num_nodes: int, normalizer):
        self.n = num_nodes
        self.bonds = np.asarray(bonds)
        self.edge_index, self.edge_attr = two_hop_edge_index(bonds, num_nodes)
        b = torch.as_tensor(np.asarray(bonds)).T
        self.local_edge_index = torch.cat([b, b.flip(0)], 1)
        self.local_edge_attr = torch.ones(self.local_edge_index.shape[1], 1)
        self.normalizer = normalizer
        #: Number of system parameters P (the feature width of the normaliser minus positions and velocities).
        self.num_params = int(normalizer.x_mean.shape[-1]) - POS_VEL

    def graph(self, x: torch.Tensor, y_norm: torch.Tensor | None = None) -> dict:
        """One frame.

        Parameters
        ----------
        x : Tensor [N, 6 + P]  raw features (positions nm, velocities nm/ps, the P parameters)
        y_norm : Tensor [N, 1], optional  normalised per-node energy
        """
        nx = self.normalizer.normalize_x(x.to(torch.float64).unsqueeze(0))[0].to(x.dtype)
        vel = x[:, 3:6]
        h = torch.cat([nx[:, POS_VEL:], vel.norm(dim=1, keepdim=True)], 1)
        return dict(pos=x[:, :3], vel=vel, h=h, edge_index=self.edge_index, edge_attr=self.edge_attr,
                    local_edge_index=self.local_edge_index, local_edge_attr=self.local_edge_attr,
                    target=y_norm)

    def graphs(self, X: torch.Tensor, Y: torch.Tensor) -> list[dict]:
        """Graphs of a stack of frames ``X`` [M, N, 6 + P] with raw energies ``Y`` [M, N, 1] (kJ/mol)."""
        Yn = self.normalizer.normalize_y(Y.to(torch.float64)).to(torch.float32)
        return [self.graph(X[i].float(), Yn[i]) for i in range(X.shape[0])]


class EGHNMicrotubuleEnergy(EnergyModel):
    """A trained energy-head EGHN as a differentiable energy function (an ``EnergyModel``).

    Parameters
    ----------
    model : cgsurrogate.surrogate.equivariant.eghn.EGHN with ``head="energy"``
    builder : MicrotubuleGraphs
        Graph construction and the normaliser of the training data.
    info : dict, optional
        Plain-python description (model name, units, dataset, metrics), set by ``load_surrogate``.
    system_spec : SystemSpec or dict, optional
        The system (checkpoints carry it); default a minimal spec of ``builder.n`` particles and
        ``builder.num_params`` parameters.

    Notes
    -----
    The base class checks the inputs and hands them over in float64; they are cast to the dtype
    and moved to the device of the network (float32 after ``load_surrogate`` unless asked
    otherwise); the outputs come back in the dtype of ``positions``. The energy is invariant, and
    the forces ``-dE/dx`` equivariant, under rotations, reflections and translations of positions
    (velocities rotated alike).
    """

    #: The prediction API passes a file's velocities (nm/ps) to models that take them.
    takes_velocities = True
    rotation_invariant = True
    translation_invariant = True

    def __init__(self, model: nn.Module, builder: MicrotubuleGraphs, info: dict | None = None, system_spec=None):
        super().__init__(system_spec if system_spec is not None
                         else SystemSpec.minimal(int(builder.n), builder.num_params))
        if getattr(model, "energy_head", None) is None:
            raise ValueError("EGHNMicrotubuleEnergy needs an EGHN built with head='energy'")
        if self.num_nodes != int(builder.n):
            raise ValueError(f"system spec has {self.num_nodes} particles, the graphs {builder.n}")
        if self.num_params != builder.num_params:
            raise ValueError(f"system spec has {self.num_params} parameters, the normaliser {builder.num_params}")
        self.model, self.builder = model, builder
        self.info = dict(info or {})

    @property
    def config(self) -> dict:
        """Plain-python description that rebuilds the architecture (see :func:`energy_from_checkpoint`):
        ``name`` ("eghn-energy"), ``num_nodes`` and ``eghn`` (the EGHN's own ``config``)."""
        return {"name": MODEL_NAME, "num_nodes": self.num_nodes, "eghn": dict(self.model.config)}

    def energy_per_particle(self, positions: torch.Tensor, params: torch.Tensor,
                            velocities: torch.Tensor | None = None) -> torch.Tensor:
        """Per-particle energies ``[B, N]`` kJ/mol (float64) of checked inputs.

        Parameters
        ----------
        positions : Tensor [B, N, 3], nm
        params : Tensor [B, P], in the units and order of ``system_spec.param_names``
        velocities : Tensor [B, N, 3], nm/ps, or None (zeros)
        """
        B, N = positions.shape[0], positions.shape[1]
        first = next(self.model.parameters())
        dtype, device = first.dtype, first.device
        vel = torch.zeros(B, N, 3, dtype=dtype, device=device) if velocities is None else velocities
        P = params.shape[-1]
        X = torch.cat([positions.to(device=device, dtype=dtype), vel.to(device=device, dtype=dtype),
                       params.to(device=device, dtype=dtype)[:, None, :].expand(B, N, P)], -1)
        g = collate_graphs([self.builder.graph(X[b]) for b in range(B)]).to(device, dtype)
        _, aux = self.model(g)
        e = aux["node_energy"].view(B, N, 1).to(torch.float64)
        return self.builder.normalizer.denormalize_y(e)[..., 0]


def save_energy_checkpoint(path, energy: EGHNMicrotubuleEnergy, *, dataset_info: dict, metrics: dict) -> Path:
    """Write an EGHN energy model as a surrogate checkpoint (``cgsurrogate.surrogate.checkpoint`` format).

    Parameters
    ----------
    path : path of the ``.pt`` file (written atomically)
    energy : EGHNMicrotubuleEnergy
    dataset_info : dict of plain values (``path``, ``hash``, ``parameter_ranges``, run ids, ...)
    metrics : dict of plain values (e.g. ``best_val_nmse``)

    Returns
    -------
    Path of the written file. ``model_name`` is ``"eghn-energy"``, ``model_config`` is
    ``energy.config``, ``hierarchy`` is None and ``extra["bonds"]`` (LongTensor [E, 2]) holds the
    bonds the graphs are built from.
    """
    from cgsurrogate.surrogate.checkpoint import save_checkpoint

    bonds = torch.as_tensor(np.asarray(energy.builder.bonds), dtype=torch.long)
    return save_checkpoint(path, energy, energy.builder.normalizer, None, dataset_info=dataset_info,
                           metrics=metrics, extra={"bonds": bonds})


def energy_from_checkpoint(ckpt: dict, info: dict | None = None) -> EGHNMicrotubuleEnergy:
    """Rebuild an :class:`EGHNMicrotubuleEnergy` (eval mode, float32, CPU) from a loaded checkpoint.

    Parameters
    ----------
    ckpt : dict from ``cgsurrogate.surrogate.checkpoint.load_checkpoint`` with ``model_name == "eghn-energy"``
    info : dict, optional
        Stored as the module's ``info``.

    Raises
    ------
    ValueError
        The configuration, normaliser or weights do not describe an EGHN energy model.
    """
    from cgsurrogate.data.microtubule import Normalizer
    from cgsurrogate.surrogate.equivariant.eghn import EGHN

    cfg = ckpt.get("model_config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("eghn"), dict) or "num_nodes" not in cfg:
        raise ValueError("EGHN energy checkpoint: model_config lacks 'eghn' or 'num_nodes'")
    if ckpt.get("normalizer") is None:
        raise ValueError("EGHN energy checkpoint: no normalizer stored")
    eghn_cfg = dict(cfg["eghn"])
    eghn_cfg.pop("name", None)
    if eghn_cfg.get("head") != "energy":
        raise ValueError(f"EGHN energy checkpoint: head is {eghn_cfg.get('head')!r}, expected 'energy'")
    try:
        model = EGHN(**eghn_cfg)
    except TypeError as exc:
        raise ValueError(f"EGHN energy checkpoint: bad model_config ({exc})") from None
    bonds = (ckpt.get("extra") or {}).get("bonds")
    if bonds is None:
        from cgsurrogate.simulate.microtubule import microtubule_topology

        bonds = microtubule_topology().bonds
    builder = MicrotubuleGraphs(np.asarray(torch.as_tensor(bonds)), int(cfg["num_nodes"]),
                                Normalizer.from_state_dict(ckpt["normalizer"]))
    energy = EGHNMicrotubuleEnergy(model, builder, info=info, system_spec=ckpt.get("system_spec"))
    try:
        energy.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint weights do not fit model {MODEL_NAME!r}: {str(exc).splitlines()[0]}") from None
    return energy.eval()
