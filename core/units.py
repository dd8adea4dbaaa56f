"""Unit constants in one place. OpenMM's units (nm, ps, kJ/mol, amu) inside simulate/ and data/;
ASE's (eV, Angstrom) at the ASE boundary. Conversion factors come from ``ase.units``."""
from __future__ import annotations

from ase import units as _ase

#: kJ/mol expressed in eV (multiply kJ/mol by this to get eV)
KJ_PER_MOL_IN_EV: float = _ase.kJ / _ase.mol
#: nm expressed in Angstrom
NM_IN_ANGSTROM: float = 10.0
#: kJ/mol/nm expressed in eV/Angstrom
KJ_PER_MOL_NM_IN_EV_PER_ANGSTROM: float = KJ_PER_MOL_IN_EV / NM_IN_ANGSTROM
#: zeptojoule (the microtubule strengths' energy unit) in kJ/mol
ZJ_IN_KJ_PER_MOL: float = 1e-21 * 6.02214076e23 / 1000.0
#: 1 ps in ASE's time unit (multiply ps by this; ASE velocities are Angstrom per ASE time unit)
PS_IN_ASE_TIME: float = 1000.0 * _ase.fs
