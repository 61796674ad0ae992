"""lskd shared metrics: the diffusion index η and companions, from penultimate feature sets.

numpy + scikit-learn (+ matplotlib for figures) only: no torch, no fairseq.
"""

__version__ = "0.1.0"
