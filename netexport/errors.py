"""Errors netexport raises on purpose, each carrying the CLI exit code it maps to.

Exit codes (DESIGN.md §3) are defined here and nowhere else:
0 success · 1 verification failed · 2 usage or input error · 3 backend or environment unavailable.
"""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, for one-line errors ("" when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_USAGE = 2
EXIT_BACKEND_UNAVAILABLE = 3


class NetexportError(Exception):
    """Base class: a one-line message meant for the user, and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InputError(NetexportError):
    """Bad user input: unknown model, bad shape or opset, unreadable or mismatched file."""

    exit_code = EXIT_USAGE


class UnknownModelError(InputError):
    pass


class RecipeError(InputError):
    """A recipe file is malformed or contradicts the registry."""


class WeightsError(InputError):
    pass


class ExportError(InputError):
    """The exporter cannot produce what was asked (e.g. an opset it cannot emit)."""


class VerificationFailed(NetexportError):
    """Parity with PyTorch outside tolerance."""

    exit_code = EXIT_VERIFICATION_FAILED


class StageFailed(NetexportError):
    """A pipeline stage could not produce a valid artifact from a valid request (checker, simplifier,
    TensorRT parser/builder). Reported like a verification failure: the artifact is not trustworthy."""

    exit_code = EXIT_VERIFICATION_FAILED


class BackendUnavailable(NetexportError):
    exit_code = EXIT_BACKEND_UNAVAILABLE
