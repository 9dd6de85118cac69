from .readout import Readout
