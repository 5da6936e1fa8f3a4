"""OpenTelemetry in two lines: the settings build FastAPI's telemetry, install() ends it."""

from fastapi import FastAPI

from fastapi_enterprise import EnterpriseSettings, install

settings = EnterpriseSettings()
app = FastAPI(**settings.fastapi_kwargs())  # telemetry=... when otel.enabled
install(app, settings)  # flushes and shuts the exporters down with the app


@app.get("/courses/{slug}")
async def course(slug: str) -> dict[str, str]:
    return {"slug": slug}
