"""A tiny app for the multi-worker metrics test (configured by FE_* variables)."""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from fastapi_enterprise import EnterpriseSettings, install

app = FastAPI()


@app.get("/pid")
async def pid() -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()), headers={"Connection": "close"})


@app.get("/work")
async def work() -> dict[str, str]:
    return {"ok": "yes"}


install(app, EnterpriseSettings())
