"""Shared fixtures of the cgmap tests: ten small molecules with hand-made bead labels, each annotated twice
(two annotations of one molecule must always land in the same fold)."""
import numpy as np
import pytest

from cgsurrogate.data.molgraph import mol_graph_from_smiles

MOLS = [("CCCCCO", [0, 0, 0, 1, 1, 1]), ("CCCCCCCN", [0, 0, 0, 0, 1, 1, 1, 1]),
        ("CCC(=O)CC#N", [0, 0, 1, 1, 2, 2, 2]), ("Oc1ccccc1CC", [0, 0, 1, 1, 2, 2, 1, 3, 3]),
        ("CCOCCOCC", [0, 0, 0, 1, 1, 2, 2, 2]), ("NCCCCCCCCO", [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]),
        ("c1ccccc1C(=O)O", [0, 0, 0, 0, 0, 0, 1, 1, 1]), ("CC(C)CC(C)C", [0, 0, 0, 1, 1, 1, 1]),
        ("OCC(O)CO", [0, 0, 1, 1, 2, 2]), ("CCN(CC)CC", [0, 0, 1, 2, 2, 3, 3])]


class Ann:
    def __init__(self, smiles, labels, k):
        self.graph = mol_graph_from_smiles(smiles)
        self.labels = np.array(labels)
        self.path = f"{k}_{smiles}.json"

    @property
    def smiles(self):
        return self.graph.name

    @property
    def n_beads(self):
        return int(self.labels.max()) + 1


@pytest.fixture(scope="module")
def anns():
    out = []
    for k, (s, lab) in enumerate(MOLS):
        out.append(Ann(s, lab, 2 * k))
        out.append(Ann(s, lab, 2 * k + 1))  # a second annotation of the same molecule
    return out


@pytest.fixture(scope="module")
def mols():
    """The (SMILES, bead labels) list behind ``anns``."""
    return MOLS
