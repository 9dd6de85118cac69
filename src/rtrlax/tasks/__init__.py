from .base import AbstractTask, Sample
from .copy import CopyCurriculum, CopyTask
