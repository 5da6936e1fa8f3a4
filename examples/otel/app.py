"""OpenTelemetry in two lines: the settings build FastAPI's telemetry, install() ends it.

Run with a collector's OTLP/HTTP endpoint (docs/how-to/opentelemetry.md)::

    FE_OTEL__ENABLED=true FE_OTEL__ENDPOINT=http://127.0.0.1:4318 \\
        uvicorn examples.otel.app:app
"""

from fastapi import FastAPI

from fastapi_enterprise import EnterpriseSettings, install

settings = EnterpriseSettings()
app = FastAPI(**settings.fastapi_kwargs())  # telemetry=... when otel.enabled
install(app, settings)  # flushes and shuts the exporters down with the app


@app.get("/courses/{slug}")
async def course(slug: str) -> dict[str, str]:
    return {"slug": slug}
