"""rtrlax: online learning for recurrent networks in JAX.

The public surface, re-exported by name.  Each name is imported from its module on
first use (PEP 562), so ``import rtrlax`` — and the ``rtrlax`` command's ``--help`` —
does not import JAX; ``rx.GRU`` and the rest behave exactly as plain re-exports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

#: public name -> the module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    # cells
    "AbstractCell": ".cells.base",
    "AbstractGatedCell": ".cells.base",
    "Columnar": ".cells.columnar",
    "EGRU": ".cells.egru",
    "GRU": ".cells.gru",
    "LSTM": ".cells.lstm",
    "LRU": ".cells.lru",
    "LRUCore": ".cells.lru",
    "VanillaRNN": ".cells.vanilla",
    "AbstractLinearGatedCell": ".cells.base",
    "run_sequence": ".cells.base",
    "RTU": ".cells.rtu",
    "NonlinearRTU": ".cells.rtu",
    "ELSTM": ".cells.elstm",
    "MinGRU": ".cells.mingru",
    "MinLSTM": ".cells.minlstm",
    "RGLRU": ".cells.rglru",
    # networks
    "Readout": ".nets.readout",
    "Constructive": ".nets.ccn",
    "LRUNet": ".nets.lru_net",
    "DeepRNN": ".nets.deep",
    "columnar_network": ".nets.columnar",
    # estimators
    "AbstractEstimator": ".estimators.base",
    "AbstractOnlineEstimator": ".estimators.base",
    "StepOutput": ".estimators.base",
    "BPTT": ".estimators.bptt",
    "ColoR": ".estimators.color",
    "KFRTRL": ".estimators.kfrtrl",
    "OnlineLRU": ".estimators.online_lru",
    "RFLO": ".estimators.rflo",
    "RTRL": ".estimators.rtrl",
    "SnAp": ".estimators.snap",
    "SparseRTRL": ".estimators.sparse_rtrl",
    "TBPTT": ".estimators.tbptt",
    "UORO": ".estimators.uoro",
    # learning
    "accumulate_grads": ".learning.accumulate",
    "LearnerState": ".learning.learner",
    "OnlineLearner": ".learning.learner",
    "ColumnarTD": ".learning.td",
    "TDLambda": ".learning.td",
    "td_rmsprop": ".learning.td",
    "CCNTD": ".learning.ccn_td",
    "CheckpointError": ".learning.checkpoint",
    "StopOnSignal": ".learning.checkpoint",
    "save_model": ".learning.checkpoint",
    "load_model": ".learning.checkpoint",
    "stream_mesh": ".learning.sharding",
    "put_streams": ".learning.sharding",
    "OnlineMetaGradient": ".learning.meta",
    "online_meta_gradient": ".learning.meta",
    "exact_meta_gradient": ".learning.meta",
    "truncated_meta_gradient": ".learning.meta",
    # agents
    "ActorCritic": ".agents.actor_critic",
    "Memoryless": ".agents.actor_critic",
    "TDPrediction": ".agents.prediction",
    # streams and tasks
    "make_env": ".tasks.envs",
    "AbstractTask": ".streams",
    "Sample": ".streams",
    "CopyCurriculum": ".tasks.copy",
    "CopyTask": ".tasks.copy",
    "CharLM": ".tasks.charlm",
    "AnimalLearning": ".tasks.animal",
    "noisy_patterning": ".tasks.animal",
    "trace_conditioning": ".tasks.animal",
    "trace_patterning": ".tasks.animal",
    "SequenceClassification": ".tasks.classification",
    "sequential_cifar10": ".tasks.cifar",
    "imdb_bytes": ".tasks.imdb",
    "lra_listops": ".tasks.lra_listops",
}

#: public sub-modules, imported on first use
_SUBMODULES = ("diagnostics", "registry", "testing")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif name == "registry":
        value = importlib.import_module(".experiments.registry", __name__)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'rtrlax' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # the same names, spelled out for type checkers and IDEs
    from . import diagnostics as diagnostics
    from . import testing as testing
    from .agents.actor_critic import ActorCritic as ActorCritic
    from .agents.actor_critic import Memoryless as Memoryless
    from .agents.prediction import TDPrediction as TDPrediction
    from .cells.base import AbstractCell as AbstractCell
    from .cells.base import AbstractGatedCell as AbstractGatedCell
    from .cells.base import AbstractLinearGatedCell as AbstractLinearGatedCell
    from .cells.base import run_sequence as run_sequence
    from .cells.elstm import ELSTM as ELSTM
    from .cells.mingru import MinGRU as MinGRU
    from .cells.minlstm import MinLSTM as MinLSTM
    from .cells.rglru import RGLRU as RGLRU
    from .cells.rtu import RTU as RTU
    from .cells.rtu import NonlinearRTU as NonlinearRTU
    from .cells.columnar import Columnar as Columnar
    from .cells.egru import EGRU as EGRU
    from .cells.gru import GRU as GRU
    from .cells.lru import LRU as LRU
    from .cells.lru import LRUCore as LRUCore
    from .cells.lstm import LSTM as LSTM
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
    from .experiments import registry as registry
    from .learning.accumulate import accumulate_grads as accumulate_grads
    from .learning.learner import LearnerState as LearnerState
    from .learning.learner import OnlineLearner as OnlineLearner
    from .learning.td import ColumnarTD as ColumnarTD
    from .learning.td import TDLambda as TDLambda
    from .learning.td import td_rmsprop as td_rmsprop
    from .learning.ccn_td import CCNTD as CCNTD
    from .learning.checkpoint import CheckpointError as CheckpointError
    from .learning.checkpoint import StopOnSignal as StopOnSignal
    from .learning.checkpoint import load_model as load_model
    from .learning.checkpoint import save_model as save_model
    from .learning.sharding import put_streams as put_streams
    from .learning.sharding import stream_mesh as stream_mesh
    from .learning.meta import OnlineMetaGradient as OnlineMetaGradient
    from .learning.meta import exact_meta_gradient as exact_meta_gradient
    from .learning.meta import online_meta_gradient as online_meta_gradient
    from .learning.meta import truncated_meta_gradient as truncated_meta_gradient
    from .nets.ccn import Constructive as Constructive
    from .nets.columnar import columnar_network as columnar_network
    from .nets.deep import DeepRNN as DeepRNN
    from .nets.lru_net import LRUNet as LRUNet
    from .nets.readout import Readout as Readout
    from .streams import AbstractTask as AbstractTask
    from .streams import Sample as Sample
    from .tasks.animal import AnimalLearning as AnimalLearning
    from .tasks.animal import noisy_patterning as noisy_patterning
    from .tasks.animal import trace_conditioning as trace_conditioning
    from .tasks.animal import trace_patterning as trace_patterning
    from .tasks.charlm import CharLM as CharLM
    from .tasks.copy import CopyCurriculum as CopyCurriculum
    from .tasks.copy import CopyTask as CopyTask
    from .tasks.envs import make_env as make_env
    from .tasks.classification import SequenceClassification as SequenceClassification
    from .tasks.cifar import sequential_cifar10 as sequential_cifar10
    from .tasks.imdb import imdb_bytes as imdb_bytes
    from .tasks.lra_listops import lra_listops as lra_listops
