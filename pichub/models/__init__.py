"""The API's request and response bodies as pydantic models: validation, output, OpenAPI.

Each request model is what the view validates a body with, and its JSON Schema
is what the OpenAPI document shows for that body (`pichub.web.openapi` reads
them from the route table), so the documentation cannot drift from the rules.
Response models build the answers from database rows. Validation failures
become one 422 whose `details` list every bad field (`validate`).
"""
