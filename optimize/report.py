"""Outputs of a relaxation: stage table, extended XYZ with per-particle energies, and a PNG
of the relaxed tube coloured by energy beside the OpenMM minimum.

The XYZ writer is :func:`cgsurrogate.simulate.trajectory_io.write_extxyz` (ASE units: Angstrom, eV).
Every file is written atomically (:mod:`cgsurrogate.core.atomic`, and
:func:`cgsurrogate.simulate.render.save_figure` for the PNG); ``relax.json`` is strict JSON.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cgsurrogate.core.atomic import write_json_atomic, write_text_atomic
from cgsurrogate.core.errors import CGSurrogateError

STAGE_COLUMNS = ("stage", "level", "vars", "evals", "energy_kjmol", "fmax_kjmol_nm", "stage_gnorm", "time_s",
                 "reason")


def stage_rows(result) -> list[dict]:
    """One plain dict per stage of a :class:`cgsurrogate.optimize.results.RelaxResult`, plus a total row.

    Returns
    -------
    list of dict with keys :data:`STAGE_COLUMNS` (energies kJ/mol, gradients kJ/mol/nm, time s).
    """
    rows = []
    for i, s in enumerate(result.stages):
        rows.append({
            "stage": str(i + 1), "level": s.level, "vars": s.num_vars, "evals": s.evals,
            "energy_kjmol": s.energy, "fmax_kjmol_nm": s.fmax, "stage_gnorm": s.stage_gnorm,
            "time_s": s.time_s, "reason": s.reason,
        })
    rows.append({
        "stage": "total", "level": "", "vars": "", "evals": result.evals, "energy_kjmol": result.energy,
        "fmax_kjmol_nm": result.fmax, "stage_gnorm": "", "time_s": result.time_s,
        "reason": "converged" if result.converged else "not converged",
    })
    return rows


def format_table(rows: list[dict], columns=None) -> str:
    """Fixed-width text table of ``rows`` (floats in ``%.6g``)."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.6g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def stage_table(result) -> str:
    """Text table of the stages of a relaxation (evaluations, energy, gradient norm, time)."""
    return format_table(stage_rows(result), STAGE_COLUMNS)


def _plain(obj):
    """``obj`` with numpy arrays and scalars turned into lists and python numbers (for JSON)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    return obj


def write_json(path, obj) -> Path:
    """Write ``obj`` as strict JSON atomically (:func:`cgsurrogate.core.atomic.write_json_atomic`).

    numpy arrays and scalars become lists and numbers; NaN or infinity anywhere is refused
    with a :class:`~cgsurrogate.core.errors.CGSurrogateError` naming ``path`` (not valid JSON).
    """
    return write_json_atomic(path, _plain(obj))


def plot_relaxed_vs_reference(path, positions, energies, ref_positions=None, ref_energies=None,
                              rest_positions=None, labels=("relaxed", "OpenMM minimum"),
                              title: str | None = None) -> Path:
    """Side views (z along the tube, y the load direction) of the relaxed tube and a reference.

    Parameters
    ----------
    path : PNG path (written atomically)
    positions : array [N, 3] nm
    energies : array [N] kJ/mol per monomer (colour)
    ref_positions, ref_energies : arrays [N, 3] nm and [N] kJ/mol, optional
        Drawn in a second panel with the same colour scale.
    rest_positions : array [N, 3] nm, optional
        Drawn in light grey behind both.
    labels : (str, str)
    title : str, optional

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cgsurrogate.simulate.render import save_figure

    panels = [(np.asarray(positions, float), np.asarray(energies, float), labels[0])]
    if ref_positions is not None:
        panels.append((np.asarray(ref_positions, float), np.asarray(ref_energies, float), labels[1]))
    for x, e, _ in panels:
        if x.ndim != 2 or x.shape[1] != 3 or e.shape != (x.shape[0],):
            raise CGSurrogateError(f"positions {x.shape} and energies {e.shape} must be [N, 3] and [N]")
    vmin = min(float(e.min()) for _, e, _ in panels)
    vmax = max(float(e.max()) for _, e, _ in panels)
    ys = np.concatenate([x[:, 1] for x, _, _ in panels])
    zs = np.concatenate([x[:, 2] for x, _, _ in panels])
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels) + 0.6), squeeze=False)
    sc = None
    for ax, (x, e, lab) in zip(axes[:, 0], panels):
        if rest_positions is not None:
            r = np.asarray(rest_positions, float)
            ax.scatter(r[:, 2], r[:, 1], s=8, c="0.85", zorder=1, label="rest")
        order = np.argsort(x[:, 0])
        sc = ax.scatter(x[order, 2], x[order, 1], c=e[order], s=16, cmap="viridis", vmin=vmin, vmax=vmax,
                        edgecolors="k", linewidths=0.15, zorder=2)
        ax.set_title(f"{lab}: total internal energy {e.sum():.4g} kJ/mol", fontsize=10)
        ax.set_xlim(zs.min() - 5, zs.max() + 5)
        ax.set_ylim(ys.min() - 5, ys.max() + 5)
        ax.set_aspect("equal")
        ax.set_ylabel("y (nm), load -y")
        if rest_positions is not None:
            ax.legend(loc="lower left", fontsize=8)
    axes[-1, 0].set_xlabel("z (nm), along the tube from the clamped end")
    cb = fig.colorbar(sc, ax=axes[:, 0].tolist(), fraction=0.025, pad=0.02)
    cb.set_label("energy per monomer (kJ/mol)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def write_relax_outputs(out_dir, result, *, params, load_force: float, energy_label: str,
                        reference: dict | None = None, true_parts: dict | None = None,
                        rest_positions=None, extra: dict | None = None) -> dict:
    """Write ``relaxed.xyz``, ``stages.txt``, ``relax.json`` and ``relaxed.png`` into ``out_dir``.

    Parameters
    ----------
    out_dir : folder (created)
    result : cgsurrogate.optimize.results.RelaxResult
    params : array [5] zJ
    load_force : float, kJ/mol/nm per loaded node
    energy_label : str  what was relaxed ("true energy" or the checkpoint path)
    reference : dict, optional  output of :func:`cgsurrogate.optimize.references.openmm_minimize`
    true_parts : dict, optional  true-energy terms of the relaxed structure
        (:func:`cgsurrogate.optimize.references.true_objective`), when a surrogate was relaxed
    rest_positions : array [N, 3] nm, optional
    extra : dict, optional  more plain values for ``relax.json``

    Returns
    -------
    dict of the paths written (``xyz``, ``table``, ``json``, ``png``).
    """
    from cgsurrogate.optimize.references import rmsd
    from cgsurrogate.simulate.trajectory_io import write_extxyz

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    paths["xyz"] = write_extxyz(out / "relaxed.xyz", result.positions, result.per_node, params=params)
    table = stage_table(result)
    summary = {
        "relaxed": energy_label,
        "units": {"positions": "nm", "energy": "kJ/mol", "gradient": "kJ/mol/nm", "params": "zJ/nm^2, zJ/rad^2",
                  "xyz": "Angstrom and eV (extended XYZ, ASE convention)"},
        "params_zj": np.asarray(params, dtype=float).tolist(),
        "load_force_kjmol_nm": float(load_force),
        **result.summary(),
    }
    if true_parts is not None:
        summary["true_energy_of_relaxed"] = {k: true_parts[k] for k in ("energy", "internal", "load", "fmax")}
    lines = [f"relaxation of the {energy_label}", table]
    if reference is not None:
        d = rmsd(result.positions, reference["positions"])
        summary["openmm_minimum"] = {k: reference[k] for k in ("energy", "internal", "load", "fmax", "time_s",
                                                               "platform")}
        summary["rmsd_to_openmm_nm"] = d
        te = true_parts["energy"] if true_parts is not None else result.energy
        lines += ["", f"OpenMM LocalEnergyMinimizer on the true force field: energy {reference['energy']:.8g} kJ/mol "
                      f"(fmax {reference['fmax']:.3g} kJ/mol/nm, {reference['time_s']:.3g} s)",
                  f"true energy of the relaxed structure: {te:.8g} kJ/mol; RMSD to the OpenMM minimum {d:.4g} nm"]
    if extra:
        summary.update(extra)
    paths["table"] = write_text_atomic(out / "stages.txt", "\n".join(lines) + "\n")
    paths["json"] = write_json(out / "relax.json", summary)
    paths["png"] = plot_relaxed_vs_reference(
        out / "relaxed.png", result.positions, result.per_node,
        None if reference is None else reference["positions"],
        None if reference is None else reference["per_node"],
        rest_positions=rest_positions,
        labels=(f"relaxed ({energy_label})", "OpenMM LocalEnergyMinimizer, true force field"),
        title=f"params {', '.join(f'{v:g}' for v in np.asarray(params).ravel())} zJ; load {load_force:.4g} kJ/mol/nm "
              "per monomer on the last two turns (-y)",
    )
    return paths
