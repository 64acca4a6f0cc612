"""The routers of the HTTP API, one module per kind of user."""
