"""Cabañas API: FastAPI with a per-component health report.

`/api/v1/healthz` answers `healthy`, `degraded` or `unhealthy`: the database is
required (unhealthy, HTTP 503, without it); WhatsApp is optional (degraded, HTTP 200,
when it is not configured), as in the seeds.
"""

import os
from pathlib import Path

import psycopg2
from fastapi import FastAPI
from fastapi.responses import JSONResponse

VERSION = Path(__file__).resolve().parent.parent.joinpath("VERSION").read_text().strip()
# What the health check asks the database; connection settings come from libpq's
# PG* environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
HEALTH_QUERY = "SELECT count(*) FROM cabins"

app = FastAPI(title="cabanas")


def database_status() -> str:
    try:
        with psycopg2.connect("", connect_timeout=2) as conn, conn.cursor() as cur:
            cur.execute(HEALTH_QUERY)
            cur.fetchone()
        conn.close()
        return "healthy"
    except psycopg2.Error:
        return "unhealthy"


def whatsapp_status() -> str:
    return "healthy" if os.environ.get("WHATSAPP_API_URL") else "degraded"


@app.get("/")
def index() -> dict:
    return {"app": "cabanas", "version": VERSION}


@app.get("/api/v1/healthz")
def healthz() -> JSONResponse:
    components = {"database": database_status(), "whatsapp": whatsapp_status()}
    if components["database"] == "unhealthy":
        status, code = "unhealthy", 503
    elif "degraded" in components.values():
        status, code = "degraded", 200
    else:
        status, code = "healthy", 200
    return JSONResponse(
        {"status": status, "version": VERSION, "components": components},
        status_code=code,
    )
