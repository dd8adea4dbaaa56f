"""The equivariant family of Han et al. (2022): message passing, EGNN, EMMP, EGHN, the MPNN and
linear baselines, the EGHN energy head, and equivariance test helpers."""
