"""The admin settings: read and changed by the ADMIN_TOKEN bearer or a Flex admin, validated field by field."""

from __future__ import annotations

import pytest
from support.edge import ADMIN_TOKEN, bearer

from baton.domain.settings import Settings


@pytest.fixture
def flex_admin(sim, scenario):
    """A Flex token with the admin role."""
    return bearer(sim.iam.mint_token(scenario.agents["erin"], "erin", roles=["agent", "admin"]))


def test_the_admin_token_reads_the_settings_in_force(client):
    """Before any change, the settings served are the configured ones."""
    response = client.get("/v1/settings", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200 and response.get_json() == Settings().to_dict()


def test_a_flex_admin_changes_settings(client, flex_admin, store):
    """A PATCH by a Flex admin changes only the fields given, stores them, and answers the new settings."""
    response = client.patch("/v1/settings", json={"notes_enabled": False, "max_attempts": 3}, headers=flex_admin)
    assert response.status_code == 200
    expected = Settings(notes_enabled=False, max_attempts=3)
    assert response.get_json() == expected.to_dict()
    assert store.settings(Settings()) == expected
    assert client.get("/v1/settings", headers=flex_admin).get_json() == expected.to_dict()


@pytest.mark.parametrize("agent", ["alice", "erin"])
def test_agents_and_supervisors_are_not_admins(client, scenario, agent):
    """A Flex token without the admin role is a 403 admin_only, even a supervisor's."""
    for response in (client.get("/v1/settings", headers=bearer(scenario.tokens[agent])),
                     client.patch("/v1/settings", json={"redact_pii": False}, headers=bearer(scenario.tokens[agent]))):
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "admin_only"


@pytest.mark.parametrize("headers, code", [({}, "missing_token"), (bearer("wrong-admin-token"), "invalid_token")])
def test_settings_need_a_token(client, headers, code):
    """Without a token, or with one that is neither the admin token nor a Flex token, settings are a 401."""
    response = client.get("/v1/settings", headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("changes, field", [
    ({"max_attempts": 0}, "max_attempts"),
    ({"close_sender_on": "never"}, "close_sender_on"),
    ({"transfer_timeout_s": 30, "offer_timeout_s": 60}, "transfer_timeout_s"),
    ({"colour": "blue"}, "colour"),
])
def test_a_bad_setting_is_refused_naming_it(client, store, changes, field):
    """An invalid or unknown setting is a 400 invalid_request naming it, and nothing is stored."""
    response = client.patch("/v1/settings", json=changes, headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 400
    assert (response.get_json()["error"]["code"], response.get_json()["error"]["field"]) == ("invalid_request", field)
    assert store.settings(Settings()) == Settings()


def test_a_settings_body_must_be_an_object(client):
    """A PATCH body that is not a JSON object is a 400 invalid_json."""
    response = client.patch("/v1/settings", json=[1], headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
