"""The OpenAPI 3.1 document: valid, served without auth, complete, and true to real responses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import samples
from conftest import Api, make_settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from pichub import errors
from pichub.app import create_app
from pichub.config import Settings
from pichub.keys import DB, SETTINGS
from pichub.models.albums import AlbumCreate
from pichub.models.base import SchemaGenerator
from pichub.models.base import validate as validate_model
from pichub.services import accounts
from pichub.web import api as api_routes
from pichub.web.openapi import REF, build_openapi
from pichub.web.routes import API_PREFIXES

JSON = "application/json"
WEBHOOK_ROUTES = {
    ("post", "/webhooks"), ("get", "/webhooks"), ("get", "/webhooks/{id}"),
    ("patch", "/webhooks/{id}"), ("delete", "/webhooks/{id}"),
    ("get", "/webhooks/{id}/deliveries"), ("post", "/webhooks/{id}/test"),
}
METHODS = {"get", "post", "patch", "put", "delete"}


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path) -> Api:
    app = create_app(make_settings(tmp_path))
    client = await aiohttp_client(app)
    await accounts.create_user(app[DB], "alice", "password-alice")
    return Api(client, await accounts.create_token(app[DB], "alice"))


def document(settings: Settings) -> dict[str, Any]:
    return build_openapi(settings, api_routes.ROUTES)


@pytest.fixture
def doc() -> dict[str, Any]:
    return document(Settings())


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


def _registered(api: Api) -> set[tuple[str, str]]:
    found = set()
    for route in api.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/v1/") and route.method != "HEAD":
            found.add((route.method.lower(), path.removeprefix("/api/v1")))
    return found


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for one schema of the document, its `$ref`s resolved within the document."""
    return Draft202012Validator({**schema, "components": doc["components"]})


def test_the_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"][0]["url"] == "/api/v1"


async def test_served_without_auth_under_both_prefixes(api: Api) -> None:
    bodies = []
    for prefix in API_PREFIXES:
        async with api.client.get(prefix + "/openapi.json") as resp:
            assert resp.status == 200 and resp.content_type == JSON
            bodies.append(await resp.json())
    assert bodies[0] == bodies[1] == document(api.app[SETTINGS])


async def test_every_api_route_is_documented(api: Api, doc: dict[str, Any]) -> None:
    registered = _registered(api)
    documented = _operations(doc)
    assert ("post", "/upload") in registered and len(registered) >= 11
    assert registered <= documented, registered - documented
    # Nothing documented that the server lacks; /img is served at the site root.
    assert documented - registered == {("get", "/img/{id}.{ext}")}
    assert WEBHOOK_ROUTES <= registered


def test_upload_fields_and_defaults_come_from_the_settings() -> None:
    settings = Settings(images={"default_quality": 77},
                        storage={"max_files_per_request": 7, "max_upload_mb": 9,
                                 "max_decode_mb": 123})
    doc = document(settings)
    body = doc["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    form = body["schema"]["properties"]
    assert set(form) == {"files[]", "url", "album_id", "quality", "format", "remove_exif",
                         "keep_location", "convertToWebP", "auto_rename", "is_public",
                         "visibility", "description", "expires_in", "expires_at", "max_views"}
    assert form["quality"]["default"] == 77 and form["files[]"]["maxItems"] == 7
    defaults = {name: form[name]["default"] for name in ("format", "remove_exif",
                "keep_location", "convertToWebP", "auto_rename", "is_public")}
    assert defaults == {"format": "auto", "remove_exif": False, "keep_location": False,
                        "convertToWebP": True, "auto_rename": False, "is_public": True}
    description = doc["paths"]["/upload"]["post"]["description"]
    assert "9 MB each" in description and "decode budget of 123 MB" in description


def _error_classes() -> list[type[errors.PichubError]]:
    found, todo = [], [errors.PichubError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_code_has_a_documented_envelope(doc: dict[str, Any]) -> None:
    responses = doc["components"]["responses"]
    envelope = _validator(doc, {"$ref": "#/components/schemas/ErrorBody"})
    for cls in _error_classes():
        documented = responses[cls.code]
        assert documented["description"].startswith(f"{cls.status} {cls.code}")
        example = documented["content"][JSON]["example"]
        envelope.validate(example)
        assert example["error"]["code"] == cls.code
    # The 401 example is exactly what the server sends (the seed's own example).
    assert responses["UNAUTHORIZED"]["content"][JSON]["example"] == errors.Unauthorized().envelope()


def test_every_operation_lists_its_errors_and_rate_headers(doc: dict[str, Any]) -> None:
    rate = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    assert set(doc["components"]["responses"]["RATE_LIMIT_EXCEEDED"]["headers"]) == rate | {
        "Retry-After"}
    for method, path in _operations(doc):
        op = doc["paths"][path][method]
        codes = set(op["responses"])
        assert {"429"} <= codes, (method, path)
        if path.startswith("/img/"):
            continue
        assert {"405", "500"} <= codes, (method, path)
        if op["security"]:
            assert {"401", "403"} <= codes, (method, path)
        success = [c for c in codes if c.startswith("2")]
        assert len(success) == 1 and set(op["responses"][success[0]]["headers"]) == rate


def test_bearer_auth_and_public_routes(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    public = {(m, p) for m, p in _operations(doc) if doc["paths"][p][m]["security"] == []}
    assert public == {("get", "/square"), ("get", "/img/{id}.{ext}"), ("get", "/openapi.json")}
    writes = {(m, p) for m, p in _operations(doc) if "**write** scope" in
              doc["paths"][p][m]["description"]}
    assert {m for m, _ in writes} == {"post", "patch", "delete"}


def test_dynamic_image_parameters(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/img/{id}.{ext}"]["get"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert set(params) >= {"w", "h", "q", "fit", "fm", "s"}
    assert params["w"]["maximum"] == Settings().images.max_dimension
    assert set(params["fit"]["enum"]) == {"cover", "crop", "contain", "fill", "inside",
                                          "outside"}


def test_outgoing_webhooks_are_described(doc: dict[str, Any]) -> None:
    assert set(doc["webhooks"]) == {"image.uploaded", "image.deleted", "album.created",
                                    "album.updated", "album.deleted", "ping"}
    headers = {p["name"] for p in doc["webhooks"]["ping"]["post"]["parameters"]}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature", "X-PicHub-Event"}


def _success_schema(doc: dict[str, Any], path: str, method: str, status: str) -> Any:
    return doc["paths"][path][method]["responses"][status]["content"][JSON]["schema"]


async def test_real_responses_match_the_documented_schemas(api: Api) -> None:
    async with api.client.get("/api/v1/openapi.json") as resp:
        doc = await resp.json()
    status, body = await api.upload(("a.jpg", samples.jpeg()), ("b.png", samples.SVG))
    assert status == 201 and body["errors"]
    _validator(doc, _success_schema(doc, "/upload", "post", "201")).validate(body)
    image = body["data"][0]
    assert set(image) == set(doc["components"]["schemas"]["UploadedImage"]["required"])
    status, body = await api.call("POST", "/api/v1/albums", json={"name": "Trips"})
    _validator(doc, _success_schema(doc, "/albums", "post", "201")).validate(body)
    for path, route in [("/api/v1/images", "/images"), ("/api/v1/albums", "/albums"),
                        ("/api/v1/square", "/square"), (f"/api/v1/images/{image['id']}",
                                                        "/images/{id}")]:
        status, body = await api.call("GET", path)
        assert status == 200
        _validator(doc, _success_schema(doc, route, "get", "200")).validate(body)
    error = _validator(doc, {"$ref": "#/components/schemas/ErrorBody"})
    for method, path, kwargs in [("GET", "/api/v1/images", {"token": "bad"}),
                                 ("GET", "/api/v1/images?per_page=0", {}),
                                 ("GET", "/api/v1/nothing", {}),
                                 ("PUT", "/api/v1/images", {})]:
        status, body = await api.call(method, path, **kwargs)
        assert status >= 400
        error.validate(body)


def test_paths_use_the_servers_prefix(doc: dict[str, Any]) -> None:
    for path in doc["paths"]:
        assert not path.startswith(API_PREFIXES), path
        assert re.fullmatch(r"(/[a-z{}.]+)+|/openapi\.json", path), path


def test_every_request_body_is_documented_by_the_model_that_validates_it(
        doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    checked = 0
    for route in api_routes.ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        if route.body is not None:
            assert op["requestBody"]["content"][JSON]["schema"] == {
                "$ref": REF.format(model=route.body.__name__)}
            own = route.body.model_json_schema(ref_template=REF, mode="validation",
                                               schema_generator=SchemaGenerator)
            assert schemas[route.body.__name__] == {k: v for k, v in own.items()
                                                    if k != "$defs"}
            examples = schemas[route.body.__name__].get("examples", [])
            assert examples, route.operation_id
            for example in examples:  # the documented examples pass the real validation
                validate_model(route.body, example)
            checked += 1
        if route.form is not None:
            form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
            own = route.form.model_json_schema(ref_template=REF, mode="validation",
                                               schema_generator=SchemaGenerator)
            for name, rule in own["properties"].items():
                documented = form["properties"][name]
                assert {k: v for k, v in documented.items() if k != "default"} == {
                    k: v for k, v in rule.items() if k != "default"}, name
            checked += 1
    assert checked == 11  # upload (multipart and JSON), image PATCH, image link POST, album
    # POST/PATCH, webhook POST/PATCH, admin user POST/PATCH, admin invite POST


def test_a_documented_body_is_refused_the_way_the_schema_says(doc: dict[str, Any]) -> None:
    album = doc["components"]["schemas"]["AlbumCreate"]
    assert album["required"] == ["name"]
    assert album["properties"]["name"]["maxLength"] == 100
    with pytest.raises(errors.ValidationError) as info:
        validate_model(AlbumCreate, {"name": "x" * 101})
    assert info.value.details == [{"field": "name", "message": "must be 1-100 characters"}]
