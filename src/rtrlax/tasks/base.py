"""The task protocol (defined in :mod:`rtrlax.streams`, re-exported here for tasks)."""

from ..streams import AbstractTask as AbstractTask
from ..streams import Sample as Sample
