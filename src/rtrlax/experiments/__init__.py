"""Experiments: what a run is (model + estimator + learner/agent + task + budget +
report), and the registry of named parts they are built from.

Nothing is imported here, so reading the registry (``rtrlax --help``, ``rtrlax list``)
stays free of JAX: import :mod:`rtrlax.experiments.registry`,
:mod:`~rtrlax.experiments.online`, :mod:`~rtrlax.experiments.prediction` or
:mod:`~rtrlax.experiments.demo` directly.
"""
