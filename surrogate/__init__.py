"""Learned surrogates: graph hierarchies and prolongations, GCN/GPCN family, EGNN/EGHN,
learned CG mappings (DSGPM), training, and wrappers (energy function, ASE, OpenMM)."""
