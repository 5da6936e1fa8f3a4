"""A tiny app for the multi-process rate-limit test (configured by FE_* variables)."""

from __future__ import annotations

from fastapi import FastAPI

from fastapi_enterprise import EnterpriseSettings, install

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


install(app, EnterpriseSettings())
