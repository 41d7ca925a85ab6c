"""Regenerate the simulator's trimmed extract of Twilio's OpenAPI descriptions.

    python scripts/extract_twilio_oai.py [--source ../shared/twilio-oai] \
        [--output simulator/twilio_oai/extract.json]

The full descriptions (twilio/twilio-oai) are megabytes of prose and examples, and a user's clone
does not have them; the simulator needs only the operations Baton touches, their parameters and
the property names of their responses. The extract is JSON written with ``indent=1`` and sorted
keys so that a regeneration from a newer checkout reviews as a readable diff. Twilio's LICENSE is
copied next to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

# The operations the simulator serves: (product, path template, methods). Each method must exist
# in the description; a method the description adds later is left out until it is listed here.
OPERATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("taskrouter", "/v1/Workspaces", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Activities", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Activities/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Events", ("GET",)),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Events/{Sid}", ("GET",)),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/TaskChannels", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/TaskChannels/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/TaskQueues", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workers", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workers/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Channels", ("GET",)),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Channels/{Sid}", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations", ("GET",)),
    (
        "taskrouter",
        "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations/{Sid}",
        ("GET", "POST"),
    ),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workflows", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Tasks", ("GET", "POST")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", ("GET", "POST", "DELETE")),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations", ("GET",)),
    ("taskrouter", "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}", ("GET", "POST")),
    ("conversations", "/v1/Configuration", ("GET", "POST")),
    ("conversations", "/v1/Configuration/Webhooks", ("GET", "POST")),
    ("conversations", "/v1/Conversations", ("GET", "POST")),
    ("conversations", "/v1/Conversations/{Sid}", ("GET", "POST", "DELETE")),
    ("conversations", "/v1/Conversations/{ConversationSid}/Messages", ("GET", "POST")),
    ("conversations", "/v1/Conversations/{ConversationSid}/Messages/{Sid}", ("GET", "POST", "DELETE")),
    ("conversations", "/v1/Conversations/{ConversationSid}/Participants", ("GET", "POST")),
    ("conversations", "/v1/Conversations/{ConversationSid}/Participants/{Sid}", ("GET", "POST", "DELETE")),
    ("conversations", "/v1/Conversations/{ConversationSid}/Webhooks", ("GET", "POST")),
    ("conversations", "/v1/Conversations/{ConversationSid}/Webhooks/{Sid}", ("GET", "POST", "DELETE")),
    ("conversations", "/v1/Services/{ChatServiceSid}/Configuration/Webhooks", ("GET", "POST")),
    ("flex-api", "/v1/Interactions", ("POST",)),
    ("flex-api", "/v1/Interactions/{Sid}", ("GET", "POST")),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels", ("GET",)),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels/{Sid}", ("GET", "POST")),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels/{ChannelSid}/Invites", ("GET", "POST")),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels/{ChannelSid}/Participants", ("GET", "POST")),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels/{ChannelSid}/Participants/{Sid}", ("POST",)),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels/{ChannelSid}/Transfers", ("POST",)),
    ("flex-api", "/v1/Interactions/{InteractionSid}/Channels/{ChannelSid}/Transfers/{Sid}", ("GET", "POST")),
    ("events", "/v1/Sinks", ("GET", "POST")),
    ("events", "/v1/Sinks/{Sid}", ("GET", "POST", "DELETE")),
    ("events", "/v1/Sinks/{Sid}/Test", ("POST",)),
    ("events", "/v1/Sinks/{Sid}/Validate", ("POST",)),
    ("events", "/v1/Subscriptions", ("GET", "POST")),
    ("events", "/v1/Subscriptions/{Sid}", ("GET", "POST", "DELETE")),
    ("events", "/v1/Subscriptions/{SubscriptionSid}/SubscribedEvents", ("GET", "POST")),
    ("events", "/v1/Subscriptions/{SubscriptionSid}/SubscribedEvents/{Type}", ("GET", "POST", "DELETE")),
)

# The description each product is read from; the product key is the API's subdomain.
SOURCES = {
    "taskrouter": "twilio_taskrouter_v1.json",
    "conversations": "twilio_conversations_v1.json",
    "flex-api": "twilio_flex_v1.json",
    "events": "twilio_events_v1.json",
}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "twilio-oai"
DEFAULT_OUTPUT = REPO_ROOT / "simulator" / "twilio_oai" / "extract.json"

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class ExtractError(Exception):
    """The description does not have the shape this script expects."""


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``#/components/schemas/...`` reference, or return the schema itself."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    prefix = "#/components/schemas/"
    if not ref.startswith(prefix):
        raise ExtractError(f"unsupported $ref {ref}")
    return resolve(components[ref[len(prefix) :]], components)


def parameter(schema: dict[str, Any], required: bool, components: dict[str, Any]) -> dict[str, Any]:
    """The type, enum, required flag and array item type of one query, form or header parameter."""
    schema = resolve(schema, components)
    # Some Flex parameters (Routing, Channel, MediaProperties…) carry no type at all; twilio-python
    # types them `object` and sends them JSON-encoded, so that is what the extract calls them.
    kind = schema.get("type", "string" if "enum" in schema else "object")
    if kind not in ("string", "integer", "number", "boolean", "array", "object"):
        raise ExtractError(f"unsupported parameter type {kind}")
    entry: dict[str, Any] = {"type": kind, "required": required}
    if "enum" in schema:
        entry["enum"] = list(schema["enum"])
    if kind == "array":
        items = resolve(schema.get("items", {}), components)
        entry["items"] = {"type": items.get("type", "string")}
        if "enum" in items:
            entry["items"]["enum"] = list(items["enum"])
    return entry


def response(spec: dict[str, Any], components: dict[str, Any], meta: set[tuple[str, ...]]) -> dict:
    """The success status, and the resource's property names (with the list key for a list).

    Adds the page ``meta`` property names of a list response to ``meta`` so the caller can check
    that every list pages the same way.
    """
    # In the description's order: Events' CreateSinkTest and CreateSubscribedEvent list 201 then 200,
    # with the same body schema. The first is the status the simulator answers; bodies that differ are refused.
    statuses = [code for code in spec["responses"] if code.startswith("2")]
    schemas = [((spec["responses"][code].get("content") or {}).get(JSON) or {}).get("schema") for code in statuses]
    if not statuses or any(schema != schemas[0] for schema in schemas[1:]):
        raise ExtractError(f"expected one success response (or several alike), found {statuses}")
    status = statuses[0]
    content = spec["responses"][status].get("content")
    if content is None:
        return {"status": int(status), "list_key": None, "properties": []}
    schema = content[JSON]["schema"]
    if "$ref" in schema:
        resource = resolve(schema, components)
        return {"status": int(status), "list_key": None, "properties": list(resource["properties"])}
    # A list page: the resources under one key, and the paging links under `meta`.
    keys = [key for key in schema["properties"] if key != "meta"]
    if "meta" not in schema["properties"] or len(keys) != 1:
        raise ExtractError(f"unrecognised list response {sorted(schema['properties'])}")
    meta.add(tuple(schema["properties"]["meta"]["properties"]))
    resource = resolve(schema["properties"][keys[0]]["items"], components)
    return {"status": int(status), "list_key": keys[0], "properties": list(resource["properties"])}


def operation(path: str, method: str, description: dict[str, Any], meta: set[tuple[str, ...]]) -> dict:
    """The extract of one operation: its id, parameters by location, body type and response."""
    components = description["components"]["schemas"]
    try:
        spec = description["paths"][path][method.lower()]
    except KeyError:
        raise ExtractError(f"{method} {path} is not in the description") from None
    params: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}}
    for param in spec.get("parameters", []):
        if param["in"] == "path":
            params["path"][param["name"]] = param["schema"].get("pattern")
        else:
            params[param["in"]][param["name"]] = parameter(
                param["schema"], param.get("required", False), components
            )
    form: dict[str, Any] = {}
    body = None
    if "requestBody" in spec:
        (media_type, content), *others = spec["requestBody"]["content"].items()
        if others or media_type not in (FORM, JSON):
            raise ExtractError(f"unsupported request body {list(spec['requestBody']['content'])}")
        body = "form" if media_type == FORM else "json"
        schema = content["schema"]
        required = set(schema.get("required", ()))
        form = {
            name: parameter(prop, name in required, components)
            for name, prop in schema.get("properties", {}).items()
        }
    return {
        "operation_id": spec["operationId"],
        "path_params": params["path"],
        "query": params["query"],
        "form": form,
        "headers": params["header"],
        "body": body,
        **response(spec, components, meta),
    }


def extract(source: Path) -> dict[str, Any]:
    """Build the extract from the full descriptions in ``source``."""
    descriptions = {product: json.loads((source / name).read_text()) for product, name in SOURCES.items()}
    products: dict[str, Any] = {}
    meta: set[tuple[str, ...]] = set()
    for product, path, methods in OPERATIONS:
        description = descriptions[product]
        base_url = description["servers"][0]["url"]
        if base_url != f"https://{product}.twilio.com":
            raise ExtractError(f"{SOURCES[product]} serves {base_url}, not {product}")
        entry = products.setdefault(product, {"base_url": base_url, "paths": {}})
        operations = {method: operation(path, method, description, meta) for method in methods}
        # Path parameters belong to the path: matching a URL happens before its method is known.
        patterns = {json.dumps(op.pop("path_params"), sort_keys=True) for op in operations.values()}
        if len(patterns) != 1:
            raise ExtractError(f"the methods of {path} disagree on its path parameters")
        entry["paths"][path] = {"path_params": json.loads(patterns.pop()), "methods": operations}
    if len(meta) != 1:
        raise ExtractError(f"list responses page differently: {sorted(meta)}")
    return {
        "source": "https://github.com/twilio/twilio-oai (MIT, see LICENSE)",
        "page_meta": list(meta.pop()),
        "products": products,
    }


def main(argv: list[str] | None = None) -> int:
    """Write the extract and Twilio's LICENSE next to it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="the descriptions: ../shared/twilio-oai, or spec/json in a twilio-oai checkout",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the extract to write")
    args = parser.parse_args(argv)
    # ../shared/twilio-oai keeps the LICENSE beside the descriptions; a checkout, two levels up.
    candidates = (args.source / "LICENSE", args.source.parent.parent / "LICENSE")
    licenses = [path for path in candidates if path.is_file()]
    try:
        if not licenses:
            raise ExtractError(f"no LICENSE in or two levels above {args.source}")
        data = extract(args.source)
    except (OSError, ExtractError) as exc:
        print(f"extract_twilio_oai: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(licenses[0], args.output.parent / "LICENSE")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
