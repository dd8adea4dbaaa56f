"""The microtubule graph, topology and the torch reference energy."""
import numpy as np
import pytest
import torch

from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.microtubule import ANGLE_TYPES, parse_params, tube_topology
from cgsurrogate.simulate.tube import Tube


def _geometry_rest_values(radius=10.5, rise=5.0, per_turn=13, seam=3):
    """Resting bond lengths (nm) and angles (degrees) derived from the helix geometry alone.

    Neighbours along the helix are ``phi = 2 pi / per_turn`` apart in azimuth and
    ``h = seam * rise / per_turn`` apart in height; longitudinal neighbours are ``rise`` apart.
    """
    phi, h = 2 * np.pi / per_turn, seam * rise / per_turn
    lateral = np.hypot(2 * radius * np.sin(phi / 2), h)
    # pitch angle at a node between its two helix neighbours: u = x(j-1) - x(j), v = x(j+1) - x(j)
    u = np.array([radius * (np.cos(phi) - 1), -radius * np.sin(phi), -h])
    v = np.array([radius * (np.cos(phi) - 1), radius * np.sin(phi), h])
    pitch = np.degrees(np.arccos(u @ v / (np.linalg.norm(u) * np.linalg.norm(v))))
    # lattice cell corner between a lateral bond and the longitudinal bond (along z)
    acute = np.degrees(np.arccos(h / lateral))
    return {"lateral": lateral, "longitudinal_bond": rise, "pitch": pitch, "longitudinal": 180.0,
            "quad_acute": acute, "quad_obtuse": 180.0 - acute}


def test_tube_counts_and_resting_values_from_the_geometry(topology):
    assert topology.num_nodes == 624
    assert len(topology.bonds) == 1232
    assert len(topology.angles) == 3648
    g = _geometry_rest_values()
    lat = topology.bond_r0[topology.bond_type != 2]
    lon = topology.bond_r0[topology.bond_type == 2]
    assert np.allclose(lat, g["lateral"], rtol=1e-12) and np.allclose(lon, g["longitudinal_bond"], rtol=1e-12)
    deg = np.degrees(topology.angle_theta0)
    for t, name in enumerate(ANGLE_TYPES):
        vals = deg[topology.angle_type == t]
        assert len(vals) and np.allclose(vals, g[name], atol=1e-9), name
    # every lattice cell gives four corners: two acute and two obtuse
    assert (topology.angle_type == 2).sum() == (topology.angle_type == 3).sum()


def test_tube_geometry_diameter_and_length(topology):
    x = topology.positions
    assert np.isclose(np.hypot(x[:, 0], x[:, 1]).max() * 2 + 5.0, 26.0)
    assert 230 < np.ptp(x[:, 2]) < 260


def test_tube_edges_are_unique_and_seam_offset():
    t = Tube(48, 13, 3)
    e = np.sort(t.edges, 1)
    assert len(np.unique(e, axis=0)) == len(e)
    seam = t.edges[t.edge_kind == 1]
    assert len(seam) == 45 and tuple(seam[0]) == (12, 3 * 13)
    a = t.adjacency()
    assert (a != a.T).nnz == 0


def test_resting_geometry_has_zero_energy_and_force(topology):
    f = TrueEnergy(topology)
    x = torch.tensor(topology.positions, requires_grad=True)
    total, per_node = f(x, torch.full((5,), 30.0, dtype=torch.float64))
    (g,) = torch.autograd.grad(total, x)
    assert abs(float(total)) < 1e-9
    assert float(g.abs().max()) < 1e-8


def test_energy_autograd_matches_finite_differences(topology):
    f = TrueEnergy(topology)
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor(topology.positions) + 0.1 * torch.randn(624, 3, generator=gen, dtype=torch.float64)
    p = torch.tensor([3.0, 9.0, 18.0, 39.0, 57.0], dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xr, p)[0], xr)
    h = 1e-6
    for node in (0, 100, 311, 623):
        for d in range(3):
            xp, xm = x.clone(), x.clone()
            xp[node, d] += h
            xm[node, d] -= h
            fd = (f(xp, p)[0] - f(xm, p)[0]) / (2 * h)
            assert torch.isclose(fd, g[node, d], rtol=1e-5, atol=1e-7)


def test_straight_angle_gradient_is_finite_at_rest_and_small_bends(topology):
    f = TrueEnergy(topology)
    x = torch.tensor(topology.positions)
    x[300, 0] += 1e-9  # a tiny bend of the straight longitudinal angles
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(f(x, torch.full((5,), 57.0, dtype=torch.float64))[0], x)
    assert torch.isfinite(g).all()


def test_per_node_split_sums_to_total_and_batches(topology):
    f = TrueEnergy(topology)
    gen = torch.Generator().manual_seed(1)
    x = torch.tensor(topology.positions)[None] + 0.2 * torch.randn(3, 624, 3, generator=gen, dtype=torch.float64)
    p = torch.tensor([[3.0] * 5, [30.0] * 5, [57.0] * 5], dtype=torch.float64)
    tot, per = f(x, p)
    assert torch.allclose(per.sum(1), tot)
    for b in range(3):
        tb, _ = f(x[b], p[b])
        assert torch.isclose(tb, tot[b])
    # energy is linear in each strength parameter: doubling all doubles the energy
    t2, _ = f(x, 2 * p)
    assert torch.allclose(t2, 2 * tot)


def test_other_tubes_build(rng):
    for n, k, p in [(24, 13, 1), (24, 3, 0), (10, 5, 2)]:
        t = tube_topology(Tube(n, k, p))
        assert t.num_nodes == n * k
        f = TrueEnergy(t)
        tot, _ = f(torch.tensor(t.positions), torch.full((5,), 9.0, dtype=torch.float64))
        assert abs(float(tot)) < 1e-9


@pytest.mark.parametrize("text", ["30,30,30", "a,b,c,d,e", "30,30,30,30,-1"])
def test_bad_parameter_strings_give_clear_errors(text):
    with pytest.raises(ValueError, match="strength parameters"):
        parse_params(text)


def test_off_grid_value_is_rejected():
    with pytest.raises(ValueError, match="outside the grid"):
        parse_params("30,30,30,30,31", on_grid=True)
    assert list(parse_params("3,9,18,30,57", on_grid=True)) == [3, 9, 18, 30, 57]
