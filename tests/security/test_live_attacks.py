"""Attacks that cross processes, played against the real web process (gunicorn, two workers sharing nothing but
Redis) of a live stack: an admin cookie replayed after sign-out, and a client guessing Flex tokens."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.edge import bearer, unknown_token

from app.auth import TOKEN_REFUSAL_WINDOW_S, TOKEN_REFUSALS_PER_CLIENT
from baton.infrastructure.store import Store, connect_redis

pytestmark = pytest.mark.e2e


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def iam_calls(sim) -> int:
    return len(sim.requests.find(product="iam"))


@pytest.fixture
def forget_rate_limits(stack):
    """The address's counts of refused tokens are gone after the test, for the next one from the same address."""
    yield
    store = Store(connect_redis(stack.redis_url))
    for key in store.redis.scan_iter(f"{store.prefix}ratelimit:*"):
        store.redis.delete(key)


def test_an_admin_cookie_replayed_after_sign_out_is_signed_out(stack):
    """An admin signs in and out; a copy of the session cookie taken while signed in, replayed afterwards to either
    gunicorn worker, gets the sign-in page and a 401 signed_out, not the admin page."""
    url, admin_token = stack.web_url, stack.extra_env["ADMIN_TOKEN"]
    admin = requests.Session()
    csrf = csrf_of(admin.get(f"{url}/admin/sign-in", timeout=10).text)
    signed_in = admin.post(f"{url}/admin/sign-in", data={"token": admin_token, "csrf_token": csrf}, timeout=10,
                           allow_redirects=False)
    assert signed_in.status_code == 302
    copied = {"baton_admin": admin.cookies["baton_admin"]}
    assert requests.get(f"{url}/admin/", cookies=copied, timeout=10, allow_redirects=False).status_code == 200

    page = admin.get(f"{url}/admin/", timeout=10)
    signed_out = admin.post(f"{url}/admin/sign-out", data={"csrf_token": csrf_of(page.text)}, timeout=10,
                            allow_redirects=False)
    assert signed_out.status_code == 302

    for _ in range(6):  # gunicorn hands the requests to both workers
        page = requests.get(f"{url}/admin/", cookies=copied, timeout=10, allow_redirects=False)
        assert page.status_code == 302 and page.headers["Location"].startswith("/admin/sign-in")
        listing = requests.get(f"{url}/admin/transfers.json", cookies=copied, timeout=10)
        assert listing.status_code == 401 and listing.json()["error"]["code"] == "signed_out"


def test_a_client_guessing_tokens_spends_a_few_iam_requests_and_never_sends_the_admin_token(stack, forget_rate_limits):
    """The probe's attack: ADMIN_TOKEN sent as an agent's bearer token, then 40 random tokens at once. The admin token
    never reaches IAM (and counts as a refused token); IAM is asked about the random ones until the address has
    TOKEN_REFUSALS_PER_CLIENT refusals (one more per other gunicorn worker at most, when they ask at the same moment),
    and the rest get 429 with Retry-After."""
    sim, url = stack.simulator, stack.web_url
    before = iam_calls(sim)
    paths = ("/v1/transfers/tr_1", "/v1/transfers?task_sid=WT" + "0" * 32)
    for path in paths:
        response = requests.get(f"{url}{path}", headers=bearer(stack.extra_env["ADMIN_TOKEN"]), timeout=10)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    assert iam_calls(sim) == before

    def guess(_: int) -> requests.Response:
        return requests.get(f"{url}/v1/transfers/tr_1", headers=bearer(unknown_token()), timeout=10)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(guess, range(40)))

    asked = iam_calls(sim) - before
    allowed = TOKEN_REFUSALS_PER_CLIENT - len(paths)
    workers = int(stack.environment()["WEB_CONCURRENCY"])
    assert allowed <= asked <= allowed + workers - 1
    assert sorted(answer.status_code for answer in answers) == [401] * asked + [429] * (40 - asked)
    limited = [answer for answer in answers if answer.status_code == 429]
    assert all(answer.json()["error"]["code"] == "rate_limited" for answer in limited)
    assert all(1 <= int(answer.headers["Retry-After"]) <= TOKEN_REFUSAL_WINDOW_S for answer in limited)
