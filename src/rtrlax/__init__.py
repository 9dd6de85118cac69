"""rtrlax: online learning for recurrent networks in JAX.

The public surface, re-exported by name.
"""

from .cells.base import AbstractCell as AbstractCell
from .cells.base import AbstractGatedCell as AbstractGatedCell
from .cells.egru import EGRU as EGRU
from .cells.gru import GRU as GRU
from .cells.lstm import LSTM as LSTM
from .cells.lru import LRU as LRU
from .cells.lru import LRUCore as LRUCore
from .cells.vanilla import VanillaRNN as VanillaRNN
from .estimators.base import AbstractEstimator as AbstractEstimator
from .estimators.base import AbstractOnlineEstimator as AbstractOnlineEstimator
from .estimators.base import StepOutput as StepOutput
from .estimators.bptt import BPTT as BPTT
from .estimators.kfrtrl import KFRTRL as KFRTRL
from .estimators.online_lru import OnlineLRU as OnlineLRU
from .estimators.rflo import RFLO as RFLO
from .estimators.rtrl import RTRL as RTRL
from .estimators.snap import SnAp as SnAp
from .estimators.sparse_rtrl import SparseRTRL as SparseRTRL
from .estimators.tbptt import TBPTT as TBPTT
from .estimators.uoro import UORO as UORO
from .learning.accumulate import accumulate_grads as accumulate_grads
from .learning.learner import LearnerState as LearnerState
from .learning.learner import OnlineLearner as OnlineLearner
from .tasks.base import AbstractTask as AbstractTask
from .tasks.base import Sample as Sample
from .tasks.copy import CopyCurriculum as CopyCurriculum
from .tasks.copy import CopyTask as CopyTask
from .tasks.charlm import CharLM as CharLM
from .nets.readout import Readout as Readout
from .nets.lru_net import LRUNet as LRUNet
from . import diagnostics as diagnostics

__version__ = "0.1.0"
