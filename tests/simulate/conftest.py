"""Shared helpers of the simulate tests."""
import pytest


@pytest.fixture
def openmm_net_forces():
    """Factory: ``make(params [R, 5]) -> net(x [R, N, 3], active) -> [R, N, 3]``, the OpenMM System's net force
    (internal + full load, kJ/mol/nm) on the Reference platform, each replica in its own frame."""
    def make(params, topology=None):
        import openmm
        from openmm import unit

        from cgsurrogate.simulate.openmm_system import build_microtubule_system

        system, info = build_microtubule_system(params, topology)
        ctx = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
        ctx.setParameter(info.load_scale_param, 1.0)
        off = info.offsets[:, None]

        def net(x, active=None):
            ctx.setPositions((x + off).reshape(-1, 3))
            f = ctx.getState(getForces=True).getForces(asNumpy=True)
            return f.value_in_unit(unit.kilojoule_per_mole / unit.nanometer).reshape(x.shape)

        net.context = ctx
        return net

    return make
