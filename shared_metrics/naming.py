"""The directory and label tags of a teacher's α and a distillation temperature T.

One spelling for the whole project: the trainers' output folders (``vision/distill.py`` writes a
student of temperature T to ``OUTPUT/T<T>/``), the workflow's run folders and the report's
labels. ``:g`` keeps a whole number without a decimal point (T1, a0) and a fraction as written
(T1.5, a0.1).
"""

from __future__ import annotations


def alpha_tag(alpha: float) -> str:
    """Tag of a teacher's label smoothing α: 0 -> a0, 0.1 -> a0.1."""
    return f"a{alpha:g}"


def temperature_tag(T: float) -> str:
    """Tag of a temperature: 1.0 -> T1, 1.5 -> T1.5, 64 -> T64."""
    return f"T{T:g}"
