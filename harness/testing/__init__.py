"""Helpers for testing adapters against real local servers (never a remote one)."""
