"""What routes depend on: the service (loaded once, held by the app) as `ServiceDep`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.service import Service


def get_service(request: Request) -> Service:
    """The loaded service; IndexNotReady (503) while it loads or when it failed to."""
    return request.app.state.holder.get()


ServiceDep = Annotated[Service, Depends(get_service)]
