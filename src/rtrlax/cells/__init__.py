from .base import AbstractCell, AbstractGatedCell
from .egru import EGRU
from .gru import GRU
from .lstm import LSTM
from .lru import LRU, LRUCore
from .vanilla import VanillaRNN
from .columnar import Columnar
from .elstm import ELSTM
from .mingru import MinGRU
from .minlstm import MinLSTM
from .rglru import RGLRU
from .rtu import RTU, NonlinearRTU
