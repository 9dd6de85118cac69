from .readout import Readout
from .lru_net import LRUNet
from .deep import DeepRNN
