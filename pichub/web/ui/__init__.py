"""The server-rendered web UI: pages over the same services as the API (see `setup`)."""
