"""Twilio's per-endpoint request limits as the simulator plays them (``simulator.faults.RateLimits``), and Baton's
gateway pacing itself under them.

The buckets run on real seconds: each test sends its burst well within one second, or drives a bucket's clock.
"""

from __future__ import annotations

import pytest

from baton.infrastructure.config import DOCUMENTED_TWILIO_RATE_LIMITS, Config
from baton.infrastructure.store import Store, connect_redis
from baton.infrastructure.twilio_gateway import RetryableTwilioError, TwilioGateway, TwilioPacer, build_twilio_client
from simulator.faults import DOCUMENTED_RATE_LIMITS, RateLimits
from simulator.spec import Spec


@pytest.fixture
def task(sim, world):
    return sim.taskrouter.create_task(world.workspace_sid, attributes={}, workflow_sid=world.workflow_sid)


@pytest.fixture
def channel(sim, world):
    """An interaction's chat channel, as (interaction sid, channel sid)."""
    interaction = sim.flex.create_interaction(
        {"type": "chat", "initiated_by": "customer", "participants": [{"identity": "customer"}]},
        {"properties": {"workspace_sid": world.workspace_sid, "workflow_sid": world.workflow_sid,
                        "task_channel_unique_name": "chat", "attributes": {}}})
    (only,) = interaction.channels.values()
    return interaction.sid, only.sid


def gateway_of(sim, world, pacer: TwilioPacer | None = None) -> TwilioGateway:
    config = Config(twilio_account_sid=sim.account_sid, twilio_auth_token=sim.auth_token,
                    twilio_workspace_sid=world.workspace_sid, transfer_workflow_sid=world.workflow_sid,
                    public_base_url="http://127.0.0.1:9", twilio_api_base=sim.url)
    return TwilioGateway(build_twilio_client(config), world.workspace_sid, pacer)


def test_requests_past_an_endpoints_limit_get_twilios_429_and_are_not_applied(sim, api, world, task):
    """Past its limit within a second, an endpoint answers 429 with code 20429 and a Retry-After, applying nothing."""
    sim.faults.rate_limits.set({"UpdateTask": 3})
    path = f"/v1/Workspaces/{world.workspace_sid}/Tasks/{task.sid}"
    answers = [api.post("taskrouter", path, data={"Priority": str(n)}) for n in range(1, 6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].json()["code"] == 20429
    assert answers[3].headers["Retry-After"] == "1"
    assert sim.taskrouter.task(task.sid).priority == 3
    assert sim.faults.rate_limits.describe() == {"limits": {"UpdateTask": 3.0}, "limited": 2}
    assert [e.fault for e in sim.requests.find("POST", "/Tasks/")][-2:] == ["429", "429"]


def test_each_endpoint_has_its_own_bucket(sim, api, world, task):
    """Fetching a task does not spend the budget of updating it: the limits are per endpoint."""
    sim.faults.rate_limits.set({"UpdateTask": 1, "FetchTask": 1})
    path = f"/v1/Workspaces/{world.workspace_sid}/Tasks/{task.sid}"
    assert api.post("taskrouter", path, data={"Priority": "1"}).status_code == 200
    assert api.get("taskrouter", path).status_code == 200
    assert api.post("taskrouter", path, data={"Priority": "2"}).status_code == 429


def test_a_list_filtered_by_an_expression_is_an_endpoint_of_its_own(sim, api, world, task):
    """Tasks?EvaluateTaskAttributes has Twilio's 3/s while the plain list of tasks stays unlimited."""
    sim.faults.rate_limits.set(DOCUMENTED_RATE_LIMITS)
    path = f"/v1/Workspaces/{world.workspace_sid}/Tasks"
    filtered = [api.get("taskrouter", path, params={"EvaluateTaskAttributes": "1==1"}).status_code for _ in range(4)]
    plain = [api.get("taskrouter", path).status_code for _ in range(10)]
    assert (filtered, set(plain)) == ([200, 200, 200, 429], {200})


def test_the_documented_limits_cover_every_endpoint_of_the_interactions_api():
    """Every Interactions operation Twilio describes is limited to 20 requests/s, and nothing else of Flex."""
    interactions = {op.operation_id for op in Spec.load().operations
                    if op.product == "flex-api" and op.path_template.startswith("/v1/Interactions")}
    assert {endpoint for endpoint, rate in DOCUMENTED_RATE_LIMITS.items() if rate == 20} == interactions


def test_a_bucket_refills_at_its_limit():
    """An empty bucket of 20/s lets one more request go every 50 ms, and says how long until the next."""
    now = [100.0]
    limits = RateLimits(clock=lambda: now[0])
    limits.set({"CreateInteractionChannelInvite": 20})
    assert [limits.admit("CreateInteractionChannelInvite") for _ in range(20)] == [None] * 20
    assert limits.admit("CreateInteractionChannelInvite") == pytest.approx(0.05)
    now[0] += 0.05
    assert limits.admit("CreateInteractionChannelInvite") is None
    assert limits.admit(None) is None and limits.admit("FetchTask") is None


def test_the_control_api_sets_reads_and_clears_the_limits(sim, api):
    """PUT /_sim/rate-limits plays the documented limits or given ones, DELETE turns them off."""
    documented = api.session.put(f"{sim.url}/_sim/rate-limits", json={"documented": True}).json()
    assert documented["limits"]["CreateInteractionChannelInvite"] == 20
    given = api.session.put(f"{sim.url}/_sim/rate-limits", json={"limits": {"FetchTask": 5}})
    assert given.json() == {"limits": {"FetchTask": 5.0}, "limited": 0}
    assert api.session.put(f"{sim.url}/_sim/rate-limits", json={"limits": {"FetchTask": 0}}).status_code == 400
    assert api.session.delete(f"{sim.url}/_sim/rate-limits").json()["limits"] == {}
    assert api.session.get(f"{sim.url}/_sim/rate-limits").json()["limits"] == {}


def test_a_burst_of_interactions_requests_past_the_limit_meets_429s_unpaced(sim, world, channel):
    """Without pacing, 30 requests to one Interactions endpoint at once get Twilio's 429 past the 20th."""
    sim.faults.rate_limits.set(DOCUMENTED_RATE_LIMITS)
    gateway = gateway_of(sim, world)
    with pytest.raises(RetryableTwilioError) as limited:
        for _ in range(30):
            gateway.list_channel_participants(*channel)
    assert (limited.value.status, limited.value.code, limited.value.retry_after) == (429, 20429, 1.0)


def test_the_gateway_paced_under_the_documented_limits_meets_no_429(sim, world, channel, redis_url):
    """Paced by Baton's defaults, 30 requests to one Interactions endpoint in a row all pass the simulator's limit."""
    sim.faults.rate_limits.set(DOCUMENTED_RATE_LIMITS)
    pacer = TwilioPacer(Store(connect_redis(redis_url)), sim.account_sid, DOCUMENTED_TWILIO_RATE_LIMITS, 1.0)
    gateway = gateway_of(sim, world, pacer)
    for _ in range(30):
        gateway.list_channel_participants(*channel)
    assert sim.faults.rate_limits.describe()["limited"] == 0


def test_the_documented_limits_are_played_by_default():
    """Like Twilio, a new simulator limits each Interactions endpoint to 20 requests/s and filtered lists to 3/s;
    only a caller measuring past one account's limits turns them off."""
    limits = RateLimits()
    assert limits.limits()["CreateInteractionChannelInvite"] == 20
    assert limits.limits()["ListTask?EvaluateTaskAttributes"] == 3
    limits.set({})
    assert limits.limits() == {}
