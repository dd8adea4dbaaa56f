"""Trained model files shipped with the package (``dsgpm_ham.pt``: DSGPM trained on the HAM subset)."""
