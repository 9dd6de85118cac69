from .accumulate import accumulate_grads
from .learner import LearnerState, OnlineLearner
