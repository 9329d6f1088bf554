"""Errors a user can cause; every CLI turns them into one line and a non-zero exit."""

from __future__ import annotations


class AculaError(Exception):
    """Base of all errors caused by bad input (files, options, data)."""


class AudioError(AculaError):
    """An audio file cannot be used: missing, not audio, empty, corrupt, unsupported."""


class DatasetError(AculaError):
    """A dataset folder or manifest does not have the layout its format expects."""
