from .base import AbstractEstimator, AbstractOnlineEstimator, StepOutput
from .bptt import BPTT
from .kfrtrl import KFRTRL
from .online_lru import OnlineLRU
from .rflo import RFLO
from .rtrl import RTRL
from .snap import SnAp
from .sparse_rtrl import SparseRTRL
from .tbptt import TBPTT
from .uoro import UORO
from .color import ColoR
