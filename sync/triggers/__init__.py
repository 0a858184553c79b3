"""Event-time triggers: decide, then emit one event a marketer's flow starts from."""

from sync.triggers.emit import Emission
from sync.triggers.engine import TriggerEngine
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings

__all__ = ["Emission", "TriggerEngine", "TriggerEngineSettings", "TriggerSettings"]
