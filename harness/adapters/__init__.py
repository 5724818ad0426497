"""Adapters: the systems under test. See `base.Adapter` and `base.register_adapter`."""

from harness.adapters.base import ADAPTERS, Adapter, Settings, register_adapter

__all__ = ["ADAPTERS", "Adapter", "Settings", "register_adapter"]
