"""Friendly names of the agents, queues and workflows a transfer mentions, for the people who read it;
and who the agents in a conversation are, for the worker preparing a transfer.

TaskRouter holds the names; Baton asks for each sid once and keeps the answer an hour in Redis, so
an agent's plugin polling a transfer costs one MGET. A name Twilio cannot give now (an outage, a
deleted worker) is simply left out: the reader shows the sid, and the next read asks again. Each
worker read also keeps the identity Flex gives that agent in conversations, as long: preparing a
transfer needs the sender's, and the agents of a contact center transfer many times an hour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from baton.domain.transfers import Transfer
from baton.infrastructure.store import Store
from baton.infrastructure.twilio_gateway import PermanentTwilioError, TwilioError, TwilioGateway, Worker

log = logging.getLogger(__name__)

NAME_TTL_S = 3600
# A sid TaskRouter does not know (a deleted worker, a mistyped target) is not asked for again at every
# poll of its transfer for this long.
UNKNOWN_TTL_S = 300
WORKFLOWS_TTL_S = 300
# Sids looked up in TaskRouter for one answer at most; the rest wait for the next read, so that an
# answer listing many transfers of a cold cache stays quick.
MAX_LOOKUPS_PER_ANSWER = 10
NAMED_PREFIXES = ("WK", "WQ", "WW")


def sids_of(transfer: Transfer) -> list[str]:
    """The workers, queues and workflows a transfer and its timeline mention."""
    mentioned = [transfer.from_worker_sid, transfer.target_sid, transfer.queue_sid, transfer.accepted_worker_sid,
                 *(entry.worker_sid for entry in transfer.timeline)]
    return [sid for sid in dict.fromkeys(mentioned) if sid and sid.startswith(NAMED_PREFIXES)]


def flex_identity(worker: Worker) -> str:
    """The identity Flex gives an agent in conversations: its contact_uri without ``client:``."""
    contact_uri = worker.attributes.get("contact_uri")
    if isinstance(contact_uri, str) and contact_uri:
        return contact_uri.removeprefix("client:")
    return worker.friendly_name


def remember_worker(store: Store, worker: Worker) -> None:
    """Keep a worker's name and conversation identity, as read just now."""
    store.cache_workers({worker.sid: (worker.friendly_name, flex_identity(worker))}, NAME_TTL_S)


def agents_of(worker_sids: Iterable[str], store: Store, gateway: TwilioGateway) -> dict[str, tuple[str, str]]:
    """Each worker's (friendly name, conversation identity), from the cache or else TaskRouter, whose errors
    are raised."""
    wanted = list(dict.fromkeys(worker_sids))
    agents = store.cached_workers(wanted)
    for sid in wanted:
        if sid not in agents:
            worker = gateway.fetch_worker(sid)
            remember_worker(store, worker)
            agents[sid] = (worker.friendly_name, flex_identity(worker))
    return agents


def names_of(sids: Iterable[str], store: Store, gateway: TwilioGateway,
             lookups: int = MAX_LOOKUPS_PER_ANSWER) -> dict[str, str]:
    """Each sid's friendly name, from the cache or else TaskRouter (``lookups`` sids at most); sids without a
    name now are left out."""
    wanted = list(dict.fromkeys(sids))
    cached = store.cached_names(wanted)
    fetched: dict[str, str] = {}
    workers: dict[str, tuple[str, str]] = {}
    unknown: dict[str, str] = {}
    for sid in [sid for sid in wanted if sid not in cached][:lookups]:
        try:
            if sid.startswith("WK"):
                worker = gateway.fetch_worker(sid)
                workers[sid] = (worker.friendly_name, flex_identity(worker))
            else:
                fetched[sid] = gateway.fetch_friendly_name(sid)
        except PermanentTwilioError:
            unknown[sid] = ""  # remembered as nameless: the reader shows the sid
        except TwilioError as exc:
            log.warning("names: TaskRouter did not answer (%s); sids are shown for now", exc)
            break
    store.cache_names(fetched, NAME_TTL_S)
    store.cache_workers(workers, NAME_TTL_S)
    store.cache_names(unknown, UNKNOWN_TTL_S)
    fetched.update((sid, name) for sid, (name, _) in workers.items())
    return {sid: name for sid, name in {**cached, **fetched}.items() if name}


def workflows(store: Store, gateway: TwilioGateway, own_workflow_sid: str) -> list[tuple[str, str]]:
    """The workspace's workflows an agent may transfer to (every one but Baton's own), by name, cached a few
    minutes; raises TwilioError when the list is not cached and TaskRouter does not answer."""
    listed = store.cached_workflows()
    if listed is None:
        listed = gateway.list_workflows()
        store.cache_workflows(listed, WORKFLOWS_TTL_S)
        store.cache_names(dict(listed), NAME_TTL_S)
    return sorted(((sid, name) for sid, name in listed if sid != own_workflow_sid), key=lambda item: item[1].lower())
