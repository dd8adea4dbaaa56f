"""A trained model as something to use: a torch energy function, an ASE calculator, an OpenMM
force and OpenMM-ML potential, and prediction on trajectory files."""
