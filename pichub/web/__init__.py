"""The HTTP layer: middleware, the JSON API, the web pages, /img, health; it calls the services.

Requests flow through `middleware` (errors, allowed hosts, caller and rate
limits), then a thin view parses the request (`params`, `multipart`, the
models), calls a service and answers (`common`). `routes` is the API's route
table, from which `openapi` builds the document. `connections` guards each
connection (timeouts, the cap) below aiohttp's request handling.
"""
