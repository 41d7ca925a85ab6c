"""/openapi.json: a valid OpenAPI 3 document that describes every route of the app and what it really answers."""

from __future__ import annotations

import pytest
from flask import Flask
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from support.edge import ADMIN_TOKEN, bearer

from app.openapi import OPERATIONS, build


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def conforms(document: dict, schema_name: str, instance: object) -> list[str]:
    """The problems of ``instance`` against a schema of the document's components (none: it conforms)."""
    schema = {**document["components"]["schemas"][schema_name], "components": document["components"]}
    return [error.message for error in OAS30Validator(schema).iter_errors(instance)]


def test_the_document_is_valid_openapi_3(document):
    """openapi-spec-validator finds nothing wrong with /openapi.json."""
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_route_but_the_admin_pages_is_described(app, document):
    """Each route of the Flask app, with each of its methods, has an operation, except /admin and static files."""
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}
              if not rule.rule.startswith(("/admin", "/static"))}
    described = {(path.replace("{", "<").replace("}", ">"), method.upper())
                 for path, operations in document["paths"].items() for method in operations}
    assert routes == described
    for path in ("/v1/transfers", "/v1/transfers/{transfer_id}", "/v1/transfers/{transfer_id}/cancel",
                 "/v1/transfers/{transfer_id}/leave", "/v1/settings", "/healthz", "/readyz", "/metrics",
                 "/webhooks/taskrouter", "/webhooks/conversations"):
        assert path in document["paths"]


def test_a_route_nobody_described_fails_the_build(app):
    """A new endpoint without an entry in OPERATIONS makes the document fail to build, not go undocumented."""
    other = Flask("other")
    other.add_url_rule("/v1/new", "api.new", lambda: "")
    assert "api.new" not in OPERATIONS
    with pytest.raises(KeyError, match="api.new"):
        build(other, "https://baton.example.com")


def test_agent_operations_name_the_flex_token_and_their_errors(document):
    """Starting a transfer takes the agent's Flex token, an Idempotency-Key, the request schema, and answers 202."""
    post = document["paths"]["/v1/transfers"]["post"]
    assert post["security"] == [{"flexToken": []}]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TransferRequest"}
    assert {"202", "400", "401", "403", "409", "422", "429", "503"} <= set(post["responses"])
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key"]
    request = document["components"]["schemas"]["TransferRequest"]
    assert request["required"] == ["task_sid", "to"] and request["additionalProperties"] is False


def test_real_answers_conform_to_the_document(client, scenario, document):
    """A transfer, a list of transfers, the settings and an error as the API answers them fit their schemas."""
    alice = bearer(scenario.tokens["alice"])
    created = client.post("/v1/transfers", headers=alice, json={
        "task_sid": scenario.conversation.task_sid, "to": scenario.agents["carol"], "notes": "VIP"})
    assert created.status_code == 202
    assert conforms(document, "Transfer", created.get_json()) == []
    listed = client.get(f"/v1/transfers?task_sid={scenario.conversation.task_sid}", headers=alice)
    assert conforms(document, "TransferList", listed.get_json()) == []
    settings = client.get("/v1/settings", headers=bearer(ADMIN_TOKEN))
    assert conforms(document, "Settings", settings.get_json()) == []
    refused = client.post("/v1/transfers", headers=alice, json={"task_sid": "WT1", "to": scenario.agents["carol"]})
    assert refused.status_code == 400 and conforms(document, "Error", refused.get_json()) == []
    assert conforms(document, "TransferRequest", {"task_sid": "WT1", "to": scenario.agents["carol"]}) != []
