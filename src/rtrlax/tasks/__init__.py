from .base import AbstractTask, Sample
from .charlm import CharLM, evaluate_bpc
from .copy import CopyCurriculum, CopyTask
