"""Training of surrogates: the GCN-family trainer with its schedules, and dynamics training of
the equivariant family."""
