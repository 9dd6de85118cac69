from .accumulate import accumulate_grads
