"""Errors and warnings a user can cause; each message says what to do."""


class SvdlabError(Exception):
    """A failure the user can fix; the CLI prints it in one line and exits 2."""


class InvalidImageError(SvdlabError):
    """An input image cannot be read, fetched or converted."""


class InvalidParameterError(SvdlabError):
    """A generation parameter is impossible for the chosen model."""


class ModelNotAvailableError(SvdlabError):
    """A model cannot be found, downloaded or loaded safely."""


class OutOfMemoryError(SvdlabError):
    """The device ran out of memory; the message names the memory options."""


class RunInterruptedError(SvdlabError):
    """A long run was stopped (Ctrl-C, SIGTERM); what it finished is saved and it can resume."""


class SvdlabWarning(UserWarning):
    """A value outside what the real models were trained on: runs, but may look wrong."""


class OutputError(SvdlabError):
    """An output file or folder cannot be written."""


class InvalidVideoError(SvdlabError):
    """An input video cannot be read, or is too short for what was asked."""
