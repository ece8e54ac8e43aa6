"""The HTTP API server (Starlette app, run by uvicorn via ``orchestrator serve``)."""
