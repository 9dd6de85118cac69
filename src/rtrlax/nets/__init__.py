from .readout import Readout
from .lru_net import LRUNet
from .columnar import columnar_network
