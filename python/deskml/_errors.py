"""deskml's exceptions: one class per status code of the engine.

Each is a deskml.Error and, where one fits, a builtin exception too, so
``except ValueError`` and ``except deskml.InvalidArgumentError`` both catch a
wrong input. ``error.code`` is the status name ("InvalidArgument", ...).
"""


class Error(Exception):
    """Base class of every error deskml raises."""

    code = "Internal"


class InvalidArgumentError(Error, ValueError):
    """A bad argument: wrong input name, dtype, rank or dimension; bad options."""

    code = "InvalidArgument"


class InvalidModelError(Error, ValueError):
    """The model file is malformed or inconsistent."""

    code = "InvalidModel"


class UnsupportedError(Error, NotImplementedError):
    """Valid ONNX that deskml does not implement (an op, a dtype, an attribute)."""

    code = "Unsupported"


class NotFoundError(Error, LookupError):
    """An unknown model, version, input or file."""

    code = "NotFound"


class OutOfRangeError(Error, ValueError):
    """A size or depth limit was exceeded."""

    code = "OutOfRange"


class IoError(Error, OSError):
    """The file system refused."""

    code = "IoError"


class ResourceExhaustedError(Error):
    """Out of memory, a full request queue, or the engine's memory budget."""

    code = "ResourceExhausted"


class CancelledError(Error):
    """The request was cancelled (Request.cancel). An asyncio task that is
    cancelled while awaiting deskml raises asyncio.CancelledError instead."""

    code = "Cancelled"


class DeadlineExceededError(Error, TimeoutError):
    """The request's timeout passed before it was answered."""

    code = "DeadlineExceeded"


class UnavailableError(Error):
    """The model cannot serve now: it failed to load, or the engine is closing."""

    code = "Unavailable"


class InternalError(Error):
    """A bug in deskml."""

    code = "Internal"


_BY_CODE = {
    cls.code: cls
    for cls in (InvalidArgumentError, InvalidModelError, UnsupportedError, NotFoundError, OutOfRangeError, IoError,
                ResourceExhaustedError, CancelledError, DeadlineExceededError, UnavailableError, InternalError)
}
