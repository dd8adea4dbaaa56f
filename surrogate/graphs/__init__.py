"""Graphs for prolongation hierarchies: weighted and tube graphs, the Laplacian, linear graph
diffusion distance (LGDD) and optimal prolongations, GPCN hierarchies and hierarchies built
from coarse-grained mappings."""
