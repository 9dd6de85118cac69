"""Diagnostics: gradient fidelity, op and memory accounting."""

from .accounting import sparse_rtrl_cost
