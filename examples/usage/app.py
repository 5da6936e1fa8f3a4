from fastapi import FastAPI, HTTPException

from fastapi_enterprise import (
    EnterpriseSettings,
    configure_logging,
    get_request_id,
    install,
    problem_responses,
)

settings = EnterpriseSettings()  # FE_* environment variables, .env, secret files
configure_logging(settings)  # one JSON line per request (readable console in development)
app = FastAPI(**settings.fastapi_kwargs())
install(app, settings)  # request IDs, problem+json errors, deploy check in production


@app.get("/courses/{course_id}", responses=problem_responses(404))
async def read_course(course_id: int) -> dict[str, object]:
    if course_id != 1:
        raise HTTPException(404, detail="No such course.")  # application/problem+json
    return {"id": 1, "title": "FastAPI in production", "request_id": get_request_id()}
