"""Diagnostics: gradient fidelity, op and memory accounting."""

from .accounting import sparse_rtrl_cost
from .fidelity import BiasVariance as BiasVariance
from .fidelity import Fidelity as Fidelity
from .fidelity import FidelitySummary as FidelitySummary
from .fidelity import bias_variance as bias_variance
from .fidelity import cosine_similarity as cosine_similarity
from .fidelity import fidelity_over_problems as fidelity_over_problems
from .fidelity import flatten as flatten
from .fidelity import gradient_fidelity as gradient_fidelity
from .fidelity import mean_abs_difference as mean_abs_difference
from .fidelity import relative_error as relative_error
from .fidelity import sign_agreement as sign_agreement
