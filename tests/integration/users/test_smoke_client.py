async def test_register_then_me(client):
    created = await client.post("/api/v1/users", json={"email": "Smoke@Example.test", "password": "Str0ng!Pass"})
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "smoke@example.test"


async def test_me_with_fixture_account(client, user):
    response = await client.get("/api/v1/users/me", token=user.token)
    assert response.status_code == 200
    assert response.json()["id"] == user.id
