"""Python client of the trainability service (sync and async, on httpx).

Imports neither FastAPI nor torch: install it anywhere with ``pip install 'trainability[client]'``
or use it from this repository. ::

    from trainability_client import Client

    with Client("http://127.0.0.1:8000") as client:
        job = client.submit("examples/depth8-sigmoid.json", wait=True)
        print(job.result["gradient_flow"]["probes"][0]["verdict"])
"""

from trainability_client.async_client import AsyncClient
from trainability_client.client import Backoff, Client, load_spec
from trainability_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TrainabilityError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    WaitTimeout,
)
from trainability_client.models import (
    Experiment,
    Remedies,
    RemedyFix,
    Sweep,
    SweepAccepted,
    SweepRow,
)

__all__ = [
    "AsyncClient",
    "Backoff",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Experiment",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Remedies",
    "RemedyFix",
    "ServerError",
    "Sweep",
    "SweepAccepted",
    "SweepRow",
    "TrainabilityError",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WaitTimeout",
    "load_spec",
]
