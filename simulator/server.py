"""The simulator's HTTP face: Twilio's REST APIs under ``TWILIO_API_BASE``, and a control API.

Layout: ``{base}/{product}/{path}``, product ``taskrouter``, ``conversations``, ``flex-api``,
``events`` or ``iam``, so ``https://conversations.twilio.com/v1/Conversations`` is served at
``{base}/conversations/v1/Conversations``. For the four products Twilio describes in OpenAPI, a
request is authenticated (basic auth: account sid and auth token), matched and validated against
the descriptions, handled by the product module under the simulator's lock, and answered in
Twilio's shape. List answers are paged as Twilio pages them, with absolute URLs on Twilio's real
hosts: a client must rewrite them back to the simulator, as Baton's gateway does.

An operation Twilio describes but the simulator does not serve answers 405 (code 20004) with a
message naming the operation, so a gap in the simulator is never mistaken for a missing resource.

The control API under ``/_sim/`` (JSON, no auth) serves the demo and tests that run the simulator
in another process:

- ``GET /_sim/health`` → ``{"status": "ok", "account_sid"}``
- ``POST /_sim/tokens`` ``{"worker_sid", "roles"?, "ttl"?, "identity"?}`` → 201 ``{"token"}``
- ``PUT /_sim/agents/{WK}/policy`` ``[steps]`` → ``{"worker_sid", "steps"}``; ``GET`` the same
- ``GET /_sim/requests?path_contains=&method=`` →
  ``{"requests": [{method, product, path, params, status, time, fault}]}``
- ``GET /_sim/deliveries?wait=true`` → ``{"deliveries": [{url, event_type, status, dropped, params}]}``
  (``wait`` first lets queued webhooks go out)
- ``POST /_sim/conversations/{CH}/messages`` ``{"author", "body", "attributes"?}`` → 201 the message,
  sent as from an SDK client (fires ``onMessageAdded`` with ``Source=SDK``)
- ``POST /_sim/faults`` a rule (the arguments of `Faults.add`, ``path_regex`` for a regex) → 201
  ``{"id", "rule"}``; ``GET /_sim/faults`` → ``{"rules", "counts", "total"}``; ``DELETE /_sim/faults``
  removes every rule; ``GET``/``DELETE /_sim/faults/{id}``; ``POST /_sim/faults/{id}/release`` lets
  a ``hold`` go
- ``POST /_sim/webhooks/drop`` ``{"event_types"?, "rate"?, "seed"?}`` loses that share of those webhooks
  (all types when none are named); ``DELETE`` stops dropping; ``GET`` the setting
- ``POST /_sim/webhooks/delivery`` ``{"copies"?, "jitter_s"?}`` sends every webhook ``copies`` times,
  each after up to ``jitter_s`` s; ``GET`` the setting
- ``POST /_sim/events/delivery`` ``{"batch_window_s"?, "max_batch"?, "redeliver_after_s"?}`` sets how
  Event Streams batches (real seconds, events) and whether every batch is sent once more that late
  (``null``: not); ``GET`` the setting. Its duplicates, jitter and losses are ``/_sim/webhooks/…``'s.
- ``PUT /_sim/rate-limits`` ``{"limits": {endpoint: per second}}`` or ``{"documented": true}`` plays Twilio's
  request limits (`simulator.faults.RateLimits`); ``DELETE`` turns them off; ``GET`` → ``{"limits", "limited"}``
- ``GET /_sim/profile`` → ``{"switches", "profiles"}``: the reading in force of each ambiguous
  behaviour (`simulator.profiles`); ``PUT /_sim/profile`` ``{"name"?, "switches"?}`` starts from the
  named profile (else from the switches in force), sets those switches, answers like ``GET``
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from simulator.core import ApiRequest, ApiResult, SimError
from simulator.faults import DOCUMENTED_RATE_LIMITS, DroppedConnection, WebhookDrop, rate_limited_endpoint
from simulator.profiles import PROFILES, ProfileError
from simulator.spec import Operation, Spec, SpecError

if TYPE_CHECKING:
    from simulator import Simulator

log = logging.getLogger(__name__)

SPEC_PRODUCTS = ("taskrouter", "conversations", "flex-api", "events")

DEFAULT_PAGE_SIZE = 50
# Twilio's largest page per list operation, from the descriptions' PageSize maximum; a larger
# PageSize is clamped to it. Every list not named here allows 1000.
MAX_PAGE_SIZE = {
    "ListConversation": 100,
    "ListConversationMessage": 100,
    "ListConversationParticipant": 100,
    "ListConversationScopedWebhook": 5,
}
_PAGE_TOKEN = re.compile(r"PT(\d+)")
_PAGING_PARAMS = ("PageSize", "Page", "PageToken")


@dataclass(frozen=True)
class LoggedRequest:
    """One REST request the simulator answered. ``path`` is under the product's host.

    ``status`` is None for a dropped connection; ``fault`` names the injected fault, if any (a
    ``429``, ``500``, ``503`` or ``drop`` was not applied; ``timeout``, ``delay`` and ``hold`` were).
    ``time`` is when the answer was ready, ``received`` when the request arrived (epoch seconds).
    """

    method: str
    product: str
    path: str
    params: Mapping[str, Any]
    status: int | None
    time: float
    fault: str | None = None
    received: float | None = None


class RequestLog:
    """The last ``maxlen`` REST requests, for tests to count calls (invites, closes, …)."""

    def __init__(self, maxlen: int = 100_000):
        self._entries: deque[LoggedRequest] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def record(self, entry: LoggedRequest) -> None:
        """Append one request."""
        with self._lock:
            self._entries.append(entry)

    def find(self, method: str | None = None, path_contains: str | None = None,
             product: str | None = None) -> list[LoggedRequest]:
        """The requests matching every given criterion, oldest first."""
        with self._lock:
            entries = list(self._entries)
        return [
            entry for entry in entries
            if (method is None or entry.method == method.upper())
            and (path_contains is None or path_contains in entry.path)
            and (product is None or entry.product == product)
        ]

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.find())

    def __len__(self) -> int:
        return len(self._entries)


def _json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=dict(headers or {}), content_type="application/json")


def _error_response(error: SimError | SpecError) -> Response:
    return _json_response(error.to_body(), error.status)


class SimulatorApp:
    """The WSGI application of one `Simulator`."""

    def __init__(self, simulator: Simulator):
        self.simulator = simulator
        self.spec = Spec.load()
        self.handlers = {
            "taskrouter": simulator.taskrouter.handlers(),
            "conversations": simulator.conversations.handlers(),
            "flex-api": simulator.flex.handlers(),
            "events": simulator.events.handlers(),
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # A drop fault raises DroppedConnection, a ConnectionError: the server closes the connection unanswered.
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request to the control API, IAM or a spec-described product.

        A fault rule (`simulator.faults`) is consulted only for a request that passed authentication,
        matching and validation, so faults always hit requests Twilio would have accepted.
        """
        received = time.time()
        product, _, rest = request.path.lstrip("/").partition("/")
        path = "/" + rest
        if product == "_sim":
            return self._control(request, path)
        if product not in SPEC_PRODUCTS and product != "iam":
            return _error_response(SimError(404, 20404, f"The requested resource {request.path} was not found"))
        params: dict[str, Any] = {}
        fault, endpoint = None, None
        try:
            self._authenticate(request)
            if product == "iam":
                apply = self._guarded(request, lambda: _json_response(
                    self.simulator.iam.handle(request.method, path, request.get_data())))
            else:
                apply, params, endpoint = self._prepare(request, product, path)
        except (SimError, SpecError) as exc:
            response = _error_response(exc)
        except Exception:  # answer like Twilio's 500 and keep serving
            log.exception("simulator failed on %s %s", request.method, request.path)
            response = _json_response(SimError(500, 20500, "Internal Server Error").to_body(), 500)
        else:
            fault = self.simulator.faults.pick(request.method, product, path, endpoint)
            if fault is None:
                response = apply()
            else:
                try:
                    response = self.simulator.faults.perform(fault, apply)
                except DroppedConnection:
                    self.simulator.requests.record(
                        LoggedRequest(request.method, product, path, params, None, time.time(), fault.kind, received))
                    raise
        self.simulator.requests.record(LoggedRequest(request.method, product, path, params, response.status_code,
                                                     time.time(), fault.kind if fault else None, received))
        return response

    @staticmethod
    def _guarded(request: Request, call: Callable[[], Response]) -> Callable[[], Response]:
        """``call``, answering Twilio's error document for whatever it raises."""

        def answer() -> Response:
            try:
                return call()
            except (SimError, SpecError) as exc:
                return _error_response(exc)
            except Exception:  # answer like Twilio's 500 and keep serving
                log.exception("simulator failed on %s %s", request.method, request.path)
                return _json_response(SimError(500, 20500, "Internal Server Error").to_body(), 500)

        return answer

    def _authenticate(self, request: Request) -> None:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            raise SimError(401, 20003, "Authentication Error - No credentials provided")
        if not (secrets.compare_digest(auth.username or "", self.simulator.account_sid)
                and secrets.compare_digest(auth.password or "", self.simulator.auth_token)):
            raise SimError(401, 20003, "Authentication Error - invalid username")

    def _prepare(self, request: Request, product: str,
                 path: str) -> tuple[Callable[[], Response], dict[str, Any], str]:
        """Match and validate a request; returns what applies it and answers, its parameters, and the endpoint its
        rate limit counts it against."""
        operation = self.spec.match(product, request.method, path)
        raw = (request.form if request.method == "POST" else request.args).to_dict(flat=False)
        operation.validate(raw)
        declared = operation.form_params if request.method == "POST" else operation.query_params
        params = {
            name: values if declared[name].type == "array" else values[-1]
            for name, values in raw.items() if values
        } if operation.body != "json" else {}
        handler = self.handlers[product].get(operation.operation_id)
        if handler is None:
            raise SimError(405, 20004, f"Method not allowed: the simulator does not serve {operation.operation_id}")
        api_request = ApiRequest(request.method, path, operation.path_params, params, request.headers)

        def apply() -> Response:
            with self.simulator.lock:
                result = handler(api_request)
                # Paging reads live state (a lazy message view), so it happens under the lock too.
                return self._render(operation, result, path, raw, params)

        return self._guarded(request, apply), params, rate_limited_endpoint(operation.operation_id, params)

    def _render(self, operation: Operation, result: Any, path: str, raw: Mapping[str, list[str]],
                params: Mapping[str, Any]) -> Response:
        status, headers, body = operation.status, {}, result
        if isinstance(result, ApiResult):
            status, headers, body = result.status, result.headers, result.body
        if body is None:
            return Response(status=status, headers=dict(headers))
        if operation.list_key is not None:
            body = self._page(operation, body, path, raw, params)
        return _json_response(operation.shape(body), status, headers)

    def _page(self, operation: Operation, items: Sequence[Mapping[str, Any]], path: str,
              raw: Mapping[str, list[str]], params: Mapping[str, Any]) -> dict[str, Any]:
        """One page of ``items``, as Twilio pages a list: ``{list_key: [...], "meta": {...}}``."""
        size = min(int(params.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE.get(operation.operation_id, 1000))
        page = int(params.get("Page", 0))
        if size < 1 or page < 0:
            raise SimError(400, 20001, "PageSize must be at least 1 and Page at least 0")
        token = params.get("PageToken")
        if token is None:
            offset = page * size
        else:
            # The simulator's page token is the offset of the page's first item.
            match = _PAGE_TOKEN.fullmatch(token)
            if match is None:
                raise SimError(400, 20001, f"Invalid PageToken '{token}'")
            offset = int(match[1])
        filters = [(name, value) for name, values in raw.items() if name not in _PAGING_PARAMS for value in values]
        base = f"https://{operation.product}.twilio.com{path}"

        def url(page_number: int, page_offset: int | None) -> str:
            query = [*filters, ("PageSize", size), ("Page", page_number)]
            if page_offset is not None:
                query.append(("PageToken", f"PT{page_offset}"))
            return f"{base}?{urlencode(query)}"

        # Slicing a lazy view renders only this page, whatever the length of the list.
        chunk = list(items[offset:offset + size])
        has_next = offset + size < len(items)
        return {
            operation.list_key: chunk,
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": url(0, None),
                "previous_page_url": url(page - 1, max(offset - size, 0)) if page > 0 and offset > 0 else None,
                "url": url(page, offset if token is not None else None),
                "next_page_url": url(page + 1, offset + size) if has_next else None,
                "key": operation.list_key,
            },
        }

    # --- control API --------------------------------------------------------------------------

    def _control(self, request: Request, path: str) -> Response:
        simulator = self.simulator
        method = request.method
        try:
            if path == "/health" and method == "GET":
                return _json_response({"status": "ok", "account_sid": simulator.account_sid})
            if path == "/tokens" and method == "POST":
                return self._mint_token(_json_body(request))
            if path == "/requests" and method == "GET":
                found = simulator.requests.find(method=request.args.get("method"),
                                                path_contains=request.args.get("path_contains"),
                                                product=request.args.get("product"))
                return _json_response({"requests": [asdict(entry) for entry in found]})
            if path == "/deliveries" and method == "GET":
                if request.args.get("wait", "").lower() == "true":
                    simulator.dispatcher.wait_idle()
                return _json_response({"deliveries": [
                    {"url": d.url, "event_type": d.params.get("EventType"), "status": d.status,
                     "dropped": d.dropped, "params": dict(d.params), "events": [dict(e) for e in d.events]}
                    for d in list(simulator.dispatcher.deliveries)
                ]})
            if path == "/events/delivery":
                return self._events_delivery(request)
            if path == "/faults" or path.startswith("/faults/"):
                return self._faults(request, path)
            if path in ("/webhooks/drop", "/webhooks/delivery"):
                return self._webhooks(request, path)
            if path == "/profile":
                return self._profile(request)
            if path == "/rate-limits":
                return self._rate_limits(request)
            if match := re.fullmatch(r"/agents/([^/]+)/policy", path):
                return self._policy(request, match[1])
            if (match := re.fullmatch(r"/conversations/([^/]+)/messages", path)) and method == "POST":
                body = _json_body(request)
                if not isinstance(body, dict) or not body.get("author") or "body" not in body:
                    return _json_response({"error": "expected {\"author\", \"body\"}"}, 400)
                message = simulator.conversations.add_message(match[1], body["author"], body["body"],
                                                              attributes=body.get("attributes"))
                return _json_response(message.to_resource(), 201)
        except SimError as exc:
            return _error_response(exc)
        except (TypeError, ValueError) as exc:
            return _json_response({"error": str(exc)}, 400)
        return _json_response({"error": f"no control endpoint {method} /_sim{path}"}, 404)

    def _profile(self, request: Request) -> Response:
        profile = self.simulator.profile
        if request.method == "PUT":
            body = _json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("switches", {}), dict):
                return _json_response({"error": 'expected {"name"?, "switches"?: {switch: reading}}'}, 400)
            try:
                profile.update(body.get("name"), **body.get("switches", {}))
            except ProfileError as exc:
                return _json_response({"error": str(exc)}, 400)
        elif request.method != "GET":
            return _json_response({"error": f"{request.method} is not served on /_sim/profile"}, 405)
        return _json_response({"switches": profile.switches(), "profiles": PROFILES})

    def _rate_limits(self, request: Request) -> Response:
        rate_limits = self.simulator.faults.rate_limits
        if request.method == "PUT":
            body = _json_body(request)
            if not isinstance(body, dict) or set(body) not in ({"limits"}, {"documented"}) \
                    or not isinstance(body.get("limits", {}), dict):
                raise ValueError('expected {"limits": {endpoint: requests per second}} or {"documented": true}')
            rate_limits.set(DOCUMENTED_RATE_LIMITS if body.get("documented") is True else body.get("limits", {}))
        elif request.method == "DELETE":
            rate_limits.set({})
        elif request.method != "GET":
            return _json_response({"error": "use GET, PUT or DELETE"}, 405)
        return _json_response(rate_limits.describe())

    def _mint_token(self, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("worker_sid"):
            raise ValueError('expected {"worker_sid", "roles"?, "ttl"?, "identity"?}')
        simulator = self.simulator
        identity = body.get("identity") or simulator.flex.worker_identity(body["worker_sid"])
        token = simulator.iam.mint_token(body["worker_sid"], identity, roles=body.get("roles") or ("agent",),
                                         ttl_seconds=float(body.get("ttl", 3600)))
        return _json_response({"token": token}, 201)

    def _faults(self, request: Request, path: str) -> Response:
        faults, method = self.simulator.faults, request.method
        if path == "/faults":
            if method == "GET":
                return _json_response(faults.describe())
            if method == "POST":
                rule = faults.add_from_json(_json_body(request))
                return _json_response({"id": rule.id, "rule": rule.describe()}, 201)
            if method == "DELETE":
                faults.clear()
                return Response(status=204)
            return _json_response({"error": "use GET, POST or DELETE"}, 405)
        match = re.fullmatch(r"/faults/(\d+)(/release)?", path)
        rule = faults.get(int(match[1])) if match else None
        if rule is None:
            return _json_response({"error": f"no fault rule {path.removeprefix('/faults/')}"}, 404)
        if match[2] and method == "POST":
            rule.release()
            return _json_response(rule.describe())
        if not match[2] and method == "GET":
            return _json_response(rule.describe())
        if not match[2] and method == "DELETE":
            rule.remove()
            return Response(status=204)
        return _json_response({"error": f"{method} is not served on /_sim{path}"}, 405)

    def _webhooks(self, request: Request, path: str) -> Response:
        dispatcher, method = self.simulator.dispatcher, request.method
        if path == "/webhooks/drop":
            if method == "POST":
                body = _json_body(request)
                if not isinstance(body, dict) or not set(body) <= {"event_types", "rate", "seed"}:
                    raise ValueError('expected {"event_types"?, "rate"?, "seed"?}')
                dispatcher.drop = WebhookDrop(body.get("event_types") or (), float(body.get("rate", 1.0)),
                                              int(body.get("seed", 0)))
            elif method == "DELETE":
                dispatcher.drop = lambda url, params: False
            elif method != "GET":
                return _json_response({"error": "use GET, POST or DELETE"}, 405)
            drop = dispatcher.drop
            return _json_response(drop.describe() if isinstance(drop, WebhookDrop) else {"event_types": [], "rate": 0})
        if method == "POST":
            body = _json_body(request)
            if not isinstance(body, dict) or not set(body) <= {"copies", "jitter_s"}:
                raise ValueError('expected {"copies"?, "jitter_s"?}')
            copies = int(body.get("copies", dispatcher.copies))
            jitter_s = float(body.get("jitter_s", dispatcher.jitter_s))
            if copies < 1 or jitter_s < 0:
                raise ValueError("copies must be at least 1 and jitter_s not negative")
            dispatcher.copies, dispatcher.jitter_s = copies, jitter_s
        elif method != "GET":
            return _json_response({"error": "use GET or POST"}, 405)
        return _json_response({"copies": dispatcher.copies, "jitter_s": dispatcher.jitter_s})

    def _events_delivery(self, request: Request) -> Response:
        events = self.simulator.events
        if request.method == "POST":
            body = _json_body(request)
            if not isinstance(body, dict) or not set(body) <= {"batch_window_s", "max_batch", "redeliver_after_s"}:
                raise ValueError('expected {"batch_window_s"?, "max_batch"?, "redeliver_after_s"?}')
            window = float(body.get("batch_window_s", events.batch_window_s))
            size = int(body.get("max_batch", events.max_batch))
            late = body.get("redeliver_after_s", events.redeliver_after_s)
            if window < 0 or size < 1 or (late is not None and float(late) < 0):
                raise ValueError("batch_window_s and redeliver_after_s must not be negative, max_batch at least 1")
            with self.simulator.lock:
                events.batch_window_s, events.max_batch = window, size
                events.redeliver_after_s = None if late is None else float(late)
        elif request.method != "GET":
            return _json_response({"error": "use GET or POST"}, 405)
        return _json_response({"batch_window_s": events.batch_window_s, "max_batch": events.max_batch,
                               "redeliver_after_s": events.redeliver_after_s})

    def _policy(self, request: Request, worker_sid: str) -> Response:
        agents = self.simulator.agents
        if request.method == "PUT":
            steps = _json_body(request)
            if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
                raise ValueError("expected a JSON list of steps")
            agents.set_policy(worker_sid, steps)
        elif request.method != "GET":
            return _json_response({"error": "use GET or PUT"}, 405)
        steps = agents.policy(worker_sid)
        if steps is None and request.method == "GET":
            return _json_response({"error": f"worker {worker_sid} has no policy"}, 404)
        return _json_response({"worker_sid": worker_sid, "steps": steps or []})


def _json_body(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        raise ValueError("the body must be JSON") from None
