"""Errors pqc reports to users.

Everything the user can cause (a bad file, an unsupported op, wrong calibration data) raises a
`PqcError` subclass with a message that names the culprit; the CLI turns it into one line on
stderr and exit status 2. `VerificationError` means the generated program disagrees with its
reference (exit status 1). `InternalError` and anything else escaping is a pqc bug (exit
status 3): for example an IR that a pass left invalid, which no input can excuse.
"""
from __future__ import annotations


class PqcError(Exception):
    """A usage or input error: reported as one line, exit status 2."""

    exit_code = 2


class ModelError(PqcError):
    """The model cannot be imported or compiled as given (unsupported op, dynamic shape, ...)."""


class DataError(PqcError):
    """Input, calibration or evaluation data of the wrong shape, dtype or format."""


class InternalError(Exception):
    """A broken invariant inside pqc (a pass produced invalid IR, a kernel got an op it cannot
    emit): a bug to report, exit status 3. Deliberately not a `PqcError`."""


class VerificationError(PqcError):
    """The generated program's outputs differ from its reference: exit status 1."""

    exit_code = 1
