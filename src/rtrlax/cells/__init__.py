from .base import AbstractCell, AbstractGatedCell
from .gru import GRU
from .lstm import LSTM
from .lru import LRU, LRUCore
from .vanilla import VanillaRNN
