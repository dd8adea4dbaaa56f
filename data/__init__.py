"""Datasets on disk and their loaders (microtubule sweeps, trajectories, M-complex,
motion capture, HAM mappings), splits and normalisation. Units: OpenMM's (nm, ps, kJ/mol, amu).
"""
