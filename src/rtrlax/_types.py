"""Shape-annotated aliases used across rtrlax (jaxtyping)."""

from typing import Any, Callable

from jaxtyping import Array, Float, PyTree

#: A model's recurrent state: a pytree of arrays (``(h,)`` for a GRU, ``(h, c)`` for an LSTM).
State = PyTree[Array]
#: Parameters (or gradients) of a model: ``eqx.filter(model, eqx.is_inexact_array)``.
Params = PyTree[Array]
#: ``loss_fn(y_t, target_t) -> scalar``.
LossFn = Callable[[Array, Any], Float[Array, ""]]
