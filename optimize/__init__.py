"""Structure relaxation: coarse-to-fine descent through the prolongation hierarchy and references."""
