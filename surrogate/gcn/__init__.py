"""The GCN family of Scott & Mjolsness (2021): graph convolutions, ensembles, N-GCN, GPCN and
A-GPCN, DiffPool, the model registry and FLOP accounting."""
