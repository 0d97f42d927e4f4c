# Type stubs for the deskml package (the compiled _deskml module and the Python half).
import os
from typing import Any, AsyncIterable, AsyncIterator, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, os.PathLike]
# An input: a numpy array (or anything numpy.asarray accepts) of the input's dtype;
# str/bytes arrays for string inputs.
_ArrayLike = Union[npt.NDArray[Any], npt.ArrayLike]
Inputs = Mapping[str, _ArrayLike]
Outputs = Dict[str, npt.NDArray[Any]]

class Error(Exception):
    code: str

class InvalidArgumentError(Error, ValueError): ...
class InvalidModelError(Error, ValueError): ...
class UnsupportedError(Error, NotImplementedError): ...
class NotFoundError(Error, LookupError): ...
class OutOfRangeError(Error, ValueError): ...
class IoError(Error, OSError): ...
class ResourceExhaustedError(Error): ...
class CancelledError(Error): ...
class DeadlineExceededError(Error, TimeoutError): ...
class UnavailableError(Error): ...
class InternalError(Error): ...

def set_log_level(level: str) -> None:
    """Sets the level of deskml's JSON log lines on stderr for the whole process: 'trace', 'debug',
    'info' (the default, unless $DESKML_LOG_LEVEL says otherwise), 'warn', 'error', 'critical' or
    'off'. Raises InvalidArgumentError for anything else."""

class TensorInfo:
    """An input or output as the model declares it."""
    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str:
        """numpy's dtype name, e.g. 'float32'."""
    @property
    def shape(self) -> Optional[Tuple[Optional[int], ...]]:
        """Dims, None for a dynamic one; None when the rank is unknown."""

class Session:
    """A model file loaded, optimised and ready to run on the calling thread.

    run() releases the GIL. Inputs are not copied when they are C-contiguous,
    aligned, native-endian arrays of the input's dtype; outputs are arrays over
    the engine's memory (read-only where that memory is shared)."""
    def __init__(self, model: _Path, *, threads: int = 0, optimization_level: int = 2, warmup: bool = True) -> None: ...
    def run(self, inputs: Inputs, *, timeout: Optional[float] = None) -> Outputs:
        """Runs the model; raises InvalidArgumentError for bad inputs, DeadlineExceededError past `timeout` seconds."""
    @property
    def inputs(self) -> List[TensorInfo]: ...
    @property
    def outputs(self) -> List[TensorInfo]: ...
    @property
    def threads(self) -> int: ...

class Request:
    """A submitted request."""
    def cancel(self) -> None:
        """Answers the request with CancelledError wherever it is; no-op once answered."""
    @property
    def cancelled(self) -> bool: ...
    @property
    def id(self) -> str: ...

Callback = Callable[[Optional[Outputs], Optional[Error]], None]

class Engine:
    """The serving runtime over a model repository folder and model files.

    Request options (keywords of infer, submit, infer_async, stream): version,
    timeout (seconds), priority, request_id, use_cache."""
    def __init__(
        self,
        repository: Optional[_Path] = None,
        *,
        threads: int = 0,
        memory_budget: Optional[int] = None,
        keep_alive: Optional[float] = None,
        poll_interval: float = 2.0,
        cache_dir: Optional[_Path] = None,
        load_pinned: bool = True,
    ) -> None: ...
    def __enter__(self) -> "Engine": ...
    def __exit__(self, *exc: object) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def threads(self) -> int: ...
    def add_model(self, name: str, path: _Path, *, config: Optional[str] = None) -> None: ...
    def load(self, model: str, *, version: Optional[int] = None) -> None: ...
    def unload(self, model: str, *, version: Optional[int] = None) -> None: ...
    def models(self) -> List[Dict[str, Any]]: ...
    def metadata(self, model: str, *, version: Optional[int] = None) -> Dict[str, Any]: ...
    def metrics(self) -> str: ...
    def infer(
        self,
        model: str,
        inputs: Inputs,
        *,
        version: Optional[int] = None,
        timeout: Optional[float] = None,
        priority: int = 0,
        request_id: Optional[str] = None,
        use_cache: bool = True,
    ) -> Outputs: ...
    def submit(
        self,
        model: str,
        inputs: Inputs,
        callback: Callback,
        *,
        version: Optional[int] = None,
        timeout: Optional[float] = None,
        priority: int = 0,
        request_id: Optional[str] = None,
        use_cache: bool = True,
    ) -> Request: ...
    async def infer_async(
        self,
        model: str,
        inputs: Inputs,
        *,
        version: Optional[int] = None,
        timeout: Optional[float] = None,
        priority: int = 0,
        request_id: Optional[str] = None,
        use_cache: bool = True,
    ) -> Outputs: ...
    def stream(
        self,
        model: str,
        inputs: Union[Iterable[Inputs], AsyncIterable[Inputs]],
        *,
        max_in_flight: int = 8,
        version: Optional[int] = None,
        timeout: Optional[float] = None,
        priority: int = 0,
        request_id: Optional[str] = None,
        use_cache: bool = True,
    ) -> AsyncIterator[Outputs]: ...
