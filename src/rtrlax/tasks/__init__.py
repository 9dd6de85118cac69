from .base import AbstractTask, Sample
from .charlm import CharLM, evaluate_bpc
from .copy import CopyCurriculum, CopyTask
from .digits import ClassTarget, class_loss, class_targets, sequential_digits
