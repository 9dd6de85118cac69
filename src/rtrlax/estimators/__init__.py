from .base import AbstractEstimator, AbstractOnlineEstimator, StepOutput
from .bptt import BPTT
from .rtrl import RTRL
from .snap import SnAp
from .tbptt import TBPTT
