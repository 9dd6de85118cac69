from .base import AbstractCell, AbstractGatedCell
from .gru import GRU
from .lstm import LSTM
from .vanilla import VanillaRNN
