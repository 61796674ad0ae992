"""lskd vision: label-smoothed teachers, KD students, temperature sweeps, feature dumps."""

__version__ = "0.1.0"
