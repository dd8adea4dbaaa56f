"""Check that an energy model keeps the contract of :class:`cgsurrogate.core.energy_model.EnergyModel`.

:func:`validate_energy_model` is for users with their own model as much as for the tests, in the
spirit of TorchSim's ``validate_model_outputs`` and e3nn's ``assert_equivariant``: it runs the model
on a small batch and checks, with numbers, everything the wrappers (ASE, OpenMM, prediction,
relaxation) rely on.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.system_spec import SystemSpec


class EnergyModelCheckError(AssertionError):
    """A model broke the energy-model contract; the message lists every failed check, one a line."""


def validate_energy_model(model, positions=None, params=None, velocities=None, *, system_spec=None,
                          displacement: float = 0.05, rtol: float = 1e-9, rtol_float32: float = 1e-3,
                          fd_step: float = 1e-5, fd_points: int = 6, fd_rtol: float = 1e-4,
                          seed: int = 0) -> dict:
    """Check ``model`` against the energy-model contract; raise if any check fails.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(positions [B, N, 3] nm, params [B, P], velocities=None) -> (total [B],
        per_particle [B, N])`` kJ/mol. An :class:`~cgsurrogate.core.energy_model.EnergyModel`
        brings its ``system_spec``; for any other module pass ``system_spec`` or sample inputs.
        Left as it was (the float64 and float32 checks convert it and put every tensor back).
    positions : array [B, N, 3] or [N, 3] nm, optional
        Sample configurations (two are used). Default: the spec's ``reference_positions`` plus
        Gaussian noise of ``displacement`` nm (clamped particles kept at rest).
    params : array [B, P] or [P], optional
        Sample parameters. Default: the spec's ``default_params`` (ones when it has none), the
        second configuration's scaled by 1.1 (so a batch that mixed its rows would show).
    velocities : array like ``positions``, nm/ps, optional
        Passed to models with ``takes_velocities`` (default: small random velocities).
    system_spec : SystemSpec or dict, optional
        Overrides ``model.system_spec``.
    displacement : float
        Noise (nm) added to the reference geometry.
    rtol : float
        Relative tolerance (of the largest per-particle energy or force) for checks that must
        hold to rounding in float64: batch of two equals each alone, unbatched equals batched,
        forces equal minus the autograd gradient, claimed invariances.
    rtol_float32 : float
        Relative tolerance between float32 and float64 copies of the model.
    fd_step, fd_points, fd_rtol : float, int, float
        Central finite differences (step nm) of the total energy at ``fd_points`` random
        coordinates of non-clamped particles, on a float64 copy; tolerance relative to the
        largest force.
    seed : int
        Seed of the sample inputs and of the random rotation and translation.

    Returns
    -------
    dict
        ``{check name: measured worst relative error (float) or True}`` for every check run.

    Raises
    ------
    EnergyModelCheckError
        (an ``AssertionError``) listing every check that failed and its measured error.

    Checks
    ------
    outputs (shapes [B] and [B, N], floating, finite, total = sum of per-particle, dtype of the
    positions); unbatched input; batch of two equals each alone; inputs not modified; forces
    (``model.energy_and_forces`` when the model has it) equal minus the autograd gradient and
    central finite differences; float32 and float64 copies agree; rotation (with reflection) and
    translation invariance when the model claims them (``rotation_invariant``,
    ``translation_invariant``); NaN positions or parameters, another particle count and another
    parameter count raise :class:`~cgsurrogate.core.errors.CGSurrogateError`.
    """
    spec = system_spec if system_spec is not None else getattr(model, "system_spec", None)
    spec = None if spec is None else SystemSpec.from_dict(spec, where="validate_energy_model")
    gen = torch.Generator().manual_seed(seed)
    x, p, v = _sample_inputs(model, spec, positions, params, velocities, displacement, gen)
    N, P = x.shape[1], p.shape[1]
    takes_v = bool(getattr(model, "takes_velocities", False))
    kw = {"velocities": v} if takes_v else {}
    clamp = set(spec.clamp_nodes) if spec is not None else set()
    report, failures = {}, []

    def check(name, ok, value, detail=""):
        report[name] = value
        if not ok:
            failures.append(f"{name}: {detail or value}")

    def run(m, *a, **k):
        try:
            return m(*a, **k), None
        except Exception as exc:  # a check reports the failure; the user sees the message
            return None, _one_line(exc)

    e64 = s64 = None
    # ---- outputs of the model as given --------------------------------------------------------
    x_in, p_in = x.clone(), p.clone()
    v_in = None if v is None else v.clone()
    out, err = run(model, x, p, **kw)
    if err is not None:
        raise EnergyModelCheckError(f"the model fails on valid input [{x.shape[0]}, {N}, 3]: {err}")
    ok, detail = _check_outputs(out, x.shape[0], N, x.dtype)
    check("outputs", ok, ok, detail)
    if not ok:
        raise EnergyModelCheckError("\n".join(failures))
    total, per = out
    scale = float(per.detach().abs().max()) or 1.0
    err = float((total.detach() - per.detach().sum(-1)).abs().max()) / scale / N
    check("total_is_sum", err <= 1e-6, err, f"total differs from the sum of per-particle energies by {err:.2e}")

    # ---- float64: batching, forces, invariances ------------------------------------------------
    x64, p64 = x.double(), p.double()
    v64 = None if v is None else v.double()
    kw64 = {"velocities": v64} if takes_v else {}
    with section("float64", check), _converted(model, torch.float64) as m64:
        with torch.no_grad():
            e64 = m64(x64, p64, **kw64)[1]
        s64 = float(e64.abs().max()) or 1.0
        if e64 is not None:
            _batching(m64, x64, p64, v64, e64, s64, N, rtol, check, section)
            _forces(m64, x64, p64, kw64, clamp, gen, fd_step, fd_points, fd_rtol, rtol, check, section)
            _invariances(model, m64, x64, p64, v64, e64, s64, gen, rtol, check, section)

    # ---- float32 ----------------------------------------------------------------------------------
    with section("float32", check), _converted(model, torch.float32) as m32:
        kw32 = {"velocities": v.float()} if takes_v else {}
        with torch.no_grad():
            e32 = m32(x.float(), p.float(), **kw32)[1]
        err = float((e32.double() - e64).abs().max()) / s64 if e64 is not None else float("nan")
        ok = e32.dtype == torch.float32 and bool(torch.isfinite(e32).all()) and err <= rtol_float32
        check("float32", ok, err, f"float32 gives dtype {e32.dtype}, differs from float64 by {err:.2e}")

    # ---- the inputs were not modified -------------------------------------------------------------
    same = torch.equal(x, x_in) and torch.equal(p, p_in) and (v is None or torch.equal(v, v_in))
    check("inputs_unmodified", same, same, "the model modified its input tensors in place")

    # ---- bad input gives CGSurrogateError ---------------------------------------------------------
    bad = {"nan_positions": (_with_nan(x), p), "inf_params": (x, _with_inf(p)),
           "fewer_particles": (x[:, : N - 1], p), "more_particles": (torch.cat([x, x[:, :1]], 1), p),
           "fewer_params": (x, p[:, : P - 1]), "more_params": (x, torch.cat([p, p[:, :1]], 1))}
    for name, (xb, pb) in bad.items():
        kwb = {"velocities": v if xb.shape[1] == N else torch.zeros_like(xb)} if takes_v else {}
        ok, msg = _raises_cg(model, xb, pb, kwb)
        check(f"error_{name}", ok, ok, f"gives {msg}; expected a CGSurrogateError")
    if failures:
        raise EnergyModelCheckError(f"{type(model).__name__} breaks the energy-model contract:\n" + "\n".join(failures))
    return report


class section:
    """Context manager: an exception inside fails the check ``name`` (with its message) and is swallowed."""

    def __init__(self, name, check):
        self.name, self.check = name, check

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, Exception):
            return False
        self.check(self.name, False, None, f"raised {_one_line(exc)}")
        return True


def _one_line(exc) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _batching(m, x, p, v, e, scale, N, rtol, check, section):
    kw = (lambda sl: {"velocities": v[sl]}) if v is not None else (lambda sl: {})
    with section("unbatched", check), torch.no_grad():
        t0, e0 = m(x[0], p[0], **kw(0))
        err = float((e0 - e[0]).abs().max()) / scale
        ok = tuple(e0.shape) == (N,) and t0.dim() == 0 and err <= rtol
        check("unbatched", ok, err, f"unbatched input gives shape {tuple(e0.shape)} / error {err:.2e}")
    with section("batch_of_two", check), torch.no_grad():
        errs = [float((m(x[b:b + 1], p[b:b + 1], **kw(slice(b, b + 1)))[1][0] - e[b]).abs().max()) / scale
                for b in range(x.shape[0])]
        check("batch_of_two", max(errs) <= rtol, max(errs), f"a batch differs from each alone by {max(errs):.2e}")


def _forces(m, x, p, kw, clamp, gen, fd_step, fd_points, fd_rtol, rtol, check, section):
    with section("forces_autograd", check):
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(m(xg, p, **kw)[0].sum(), xg)
        fscale = float(grad.abs().max()) or 1.0
        if hasattr(m, "energy_and_forces"):
            f = m.energy_and_forces(x, p, **kw)[2]
            err = float((f.detach() + grad).abs().max()) / fscale
            check("forces_autograd", err <= rtol, err, f"energy_and_forces differs from -dE/dx by {err:.2e}")
    if "grad" not in locals():
        return
    N = x.shape[1]
    free = [i for i in range(N) if i not in clamp] or list(range(N))
    picks = [(int(b), int(free[int(i)]), int(d)) for b, i, d in zip(
        torch.randint(0, x.shape[0], (fd_points,), generator=gen),
        torch.randint(0, len(free), (fd_points,), generator=gen),
        torch.randint(0, 3, (fd_points,), generator=gen))]
    with section("forces_finite_differences", check), torch.no_grad():
        fd_err = 0.0
        for b, i, d in picks:
            xp, xm = x.clone(), x.clone()
            xp[b, i, d] += fd_step
            xm[b, i, d] -= fd_step
            fd = (m(xp, p, **kw)[0][b] - m(xm, p, **kw)[0][b]) / (2 * fd_step)
            fd_err = max(fd_err, abs(float(fd) - float(grad[b, i, d])) / fscale)
        check("forces_finite_differences", fd_err <= fd_rtol, fd_err,
              f"-dE/dx differs from central finite differences by {fd_err:.2e} of the largest force")


def _invariances(model, m, x, p, v, e, scale, gen, rtol, check, section):
    kw = {"velocities": v} if v is not None else {}
    if getattr(model, "translation_invariant", False):
        with section("translation_invariance", check), torch.no_grad():
            shift = torch.randn(3, generator=gen, dtype=torch.float64) * 10.0
            err = float((m(x + shift, p, **kw)[1] - e).abs().max()) / scale
            check("translation_invariance", err <= rtol, err, f"a translation changes the energies by {err:.2e}")
    if getattr(model, "rotation_invariant", False):
        q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))
        for label, rot in (("rotation", q * torch.sign(torch.det(q))), ("reflection", -q * torch.sign(torch.det(q)))):
            with section(f"{label}_invariance", check), torch.no_grad():
                kwr = {"velocities": v @ rot.T} if v is not None else {}
                err = float((m(x @ rot.T, p, **kwr)[1] - e).abs().max()) / scale
                check(f"{label}_invariance", err <= rtol, err, f"a {label} changes the energies by {err:.2e}")


@contextlib.contextmanager
def _converted(model, dtype):
    """The model with its floating parameters and buffers in ``dtype``; afterwards every tensor
    is put back exactly (the objects themselves, so no precision is lost)."""
    saved = []
    for mod in model.modules():
        for name, t in mod._parameters.items():
            if t is not None:
                saved.append((mod, "_parameters", name, t, t.data))
        for name, t in mod._buffers.items():
            if t is not None:
                saved.append((mod, "_buffers", name, t, None))
    try:
        model.to(dtype=dtype)
        yield model
    finally:
        for mod, kind, name, t, data in saved:
            getattr(mod, kind)[name] = t
            if data is not None:
                t.data = data


def _raises_cg(model, x, p, kw) -> tuple[bool, str]:
    try:
        model(x, p, **kw)
    except CGSurrogateError:
        return True, "CGSurrogateError"
    except Exception as exc:  # reported as the failure
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return False, "no error"


def _check_outputs(out, B, N, dtype):
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        return False, f"returns {type(out).__name__}, expected (total [B], per_particle [B, N])"
    total, per = out
    if tuple(total.shape) != (B,) or tuple(per.shape) != (B, N):
        return False, f"returns shapes {tuple(total.shape)} and {tuple(per.shape)}, expected ({B},) and ({B}, {N})"
    if per.dtype != dtype or total.dtype != dtype:
        return False, f"returns {per.dtype} for {dtype} positions"
    if not (bool(torch.isfinite(per).all()) and bool(torch.isfinite(total).all())):
        return False, "returns NaN or infinite energies for valid input"
    return True, ""


def _sample_inputs(model, spec, positions, params, velocities, displacement, gen):
    if positions is None:
        ref = None if spec is None else spec.reference_positions_array()
        if ref is None:
            raise CGSurrogateError("validate_energy_model: pass positions, or a system_spec with reference_positions")
        x = torch.as_tensor(ref)[None].repeat(2, 1, 1)
        noise = displacement * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        if spec.clamp_nodes:
            noise[:, list(spec.clamp_nodes)] = 0.0
        x = x + noise
    else:
        x = torch.as_tensor(np.asarray(positions), dtype=torch.float64)
        x = x[None] if x.dim() == 2 else x
        if x.shape[0] == 1:
            x = torch.cat([x, x + displacement * torch.randn(x.shape, generator=gen, dtype=torch.float64)])
        x = x[:2]
    if params is None:
        n_p = spec.num_params if spec is not None else int(getattr(model, "num_params"))
        base = spec.default_params if spec is not None and spec.default_params is not None else (1.0,) * n_p
        p = torch.tensor([list(base), [1.1 * b for b in base]], dtype=torch.float64)
    else:
        p = torch.as_tensor(np.asarray(params), dtype=torch.float64)
        p = p[None] if p.dim() == 1 else p
        if p.shape[0] == 1:
            p = torch.cat([p, 1.1 * p])
        p = p[:2]
    v = None
    if getattr(model, "takes_velocities", False):
        v = (torch.as_tensor(np.asarray(velocities), dtype=torch.float64).reshape(x.shape) if velocities is not None
             else 1e-3 * torch.randn(x.shape, generator=gen, dtype=torch.float64))
    return x, p, v


def _with_nan(x):
    y = x.clone()
    y[0, 0, 0] = float("nan")
    return y


def _with_inf(p):
    q = p.clone()
    q[0, 0] = float("inf")
    return q


__all__ = ["validate_energy_model", "EnergyModelCheckError"]
