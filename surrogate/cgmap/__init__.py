"""Learned coarse-grained mappings: DSGPM (Li et al. 2020), partitioning, metrics and the
``cgmap`` mapping and drawing."""
