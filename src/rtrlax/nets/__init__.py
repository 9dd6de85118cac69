from .readout import Readout
from .lru_net import LRUNet
