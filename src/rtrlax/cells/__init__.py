from .base import AbstractCell, AbstractGatedCell
from .egru import EGRU
from .gru import GRU
from .lstm import LSTM
from .lru import LRU, LRUCore
from .vanilla import VanillaRNN
from .columnar import Columnar
