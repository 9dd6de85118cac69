from .base import AbstractEstimator, AbstractOnlineEstimator, StepOutput
from .bptt import BPTT
from .online_lru import OnlineLRU
from .rtrl import RTRL
from .snap import SnAp
from .sparse_rtrl import SparseRTRL
from .tbptt import TBPTT
