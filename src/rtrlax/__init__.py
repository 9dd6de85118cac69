"""rtrlax: online learning for recurrent networks in JAX.

The public surface, re-exported by name.
"""

from .cells.base import AbstractCell as AbstractCell
from .cells.base import AbstractGatedCell as AbstractGatedCell
from .cells.columnar import Columnar as Columnar
from .cells.columnar import columnar_network as columnar_network
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
from .estimators.color import ColoR as ColoR
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
from .learning.td import ColumnarTD as ColumnarTD
from .learning.td import TDLambda as TDLambda
from .learning.td import td_rmsprop as td_rmsprop
from .tasks.base import AbstractTask as AbstractTask
from .tasks.base import Sample as Sample
from .tasks.copy import CopyCurriculum as CopyCurriculum
from .tasks.copy import CopyTask as CopyTask
from .tasks.charlm import CharLM as CharLM
from .tasks.animal import AnimalLearning as AnimalLearning
from .tasks.animal import noisy_patterning as noisy_patterning
from .tasks.animal import trace_conditioning as trace_conditioning
from .tasks.animal import trace_patterning as trace_patterning
from .nets.readout import Readout as Readout
from .nets.ccn import Constructive as Constructive
from .nets.lru_net import LRUNet as LRUNet
from . import diagnostics as diagnostics

__version__ = "0.1.0"
