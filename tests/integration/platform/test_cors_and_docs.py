"""CORS for the allowed browser origins, OPTIONS and HEAD on every route, and the API docs at /docs."""

ALLOWED = "https://clicknback.com"  # the default CORS_ALLOWED_ORIGINS
OTHER = "https://evil.example"


async def test_preflight_from_an_allowed_origin_names_methods_headers_and_origin(client):
    response = await client.request(
        "OPTIONS",
        "/api/v1/users/me",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["vary"] == "Origin"
    assert response.headers["x-request-id"]


async def test_preflight_from_another_origin_gets_no_cors_headers(client):
    response = await client.request(
        "OPTIONS", "/api/v1/purchases", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_plain_options_lists_the_allowed_methods_of_a_path_with_parameters(client):
    response = await client.request("OPTIONS", "/api/v1/offers/8d2e3f4b-0000-4000-8000-000000000000/status")
    assert response.status_code == 204
    assert response.headers["allow"] == "OPTIONS, PATCH"


async def test_actual_response_to_an_allowed_origin_exposes_request_id(client):
    allowed = await client.get("/health/live", headers={"Origin": ALLOWED})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in allowed.headers["access-control-expose-headers"]
    other = await client.get("/health/live", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in other.headers
    plain = await client.get("/health/live")
    assert "access-control-allow-origin" not in plain.headers


async def test_errors_carry_cors_headers_too(client):
    response = await client.get("/api/v1/users/me", headers={"Origin": ALLOWED})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ALLOWED


async def test_head_answers_like_get_without_a_body(client):
    response = await client.request("HEAD", "/health/live")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-request-id"]
    unauthenticated = await client.request("HEAD", "/api/v1/users/me")
    assert unauthenticated.status_code == 401


async def test_swagger_ui_page_points_at_the_document(client):
    for path in ("/docs", "/docs/", "/docs/swagger"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert '"/docs/openapi.json"' in response.text
        assert "http" not in response.text.replace('"http://www.w3.org', ""), "no asset from elsewhere"


async def test_swagger_ui_assets_come_from_the_service(client):
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in script.content
    style = await client.get("/docs/assets/swagger-ui.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    for name in ("swagger-initializer.js", "LICENSE", "..%2Fcore.py", "swagger-editor.js"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 404, name


async def test_document_describes_security_and_omits_options_and_head(client):
    document = (await client.get("/docs/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["paths"]["/api/v1/users/me"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/api/v1/auth/login"]["post"]
    methods = {method for item in document["paths"].values() for method in item}
    assert methods <= {"get", "post", "put", "patch", "delete"}
    assert not [path for path in document["paths"] if path.startswith("/docs")]
    assert [tag["name"] for tag in document["tags"]][:3] == ["health", "debug", "users"]
