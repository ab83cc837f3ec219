"""An acknowledged event is never lost, even on `kill -9` (docs/architecture.md, "The path of one event", step 3).

The real server runs in a subprocess. Sixteen HTTP clients send single events
and batches of 10-50 (some with client ids) to it; the server is SIGKILLed
while requests are in flight and started again on the same data dir. Every
event that got a 201/200 must then be readable at once by id with the hash
its receipt named; the search store must catch up; every request must be all
or nothing; `eventlog verify` must hold after the restart and after a clean
stop; and a client retry of a client id must answer 200 `duplicate: true`
with the original hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TENANT = "durability"
SCOPES = ("events:write", "events:read")
ACTION = "durability.write"
HTTP_TIMEOUT_S = 15.0
# The search store is fed by the fan-out; how long it may take to catch up after a restart.
CATCH_UP_S = 15.0
READ_CONCURRENCY = 8

IdMode = Literal["none", "all", "mixed"]


# -- what the clients send and what they were told ----------------------------


@dataclass(frozen=True)
class Sent:
    """One POST /v1/events request."""

    number: int
    events: list[dict[str, Any]]
    single: bool

    def body(self) -> dict[str, Any]:
        return self.events[0] if self.single else {"events": self.events}

    @property
    def client_ids(self) -> list[str | None]:
        return [e.get("id") for e in self.events]


@dataclass(frozen=True)
class Receipt:
    id: str
    hash: str
    duplicate: bool


@dataclass
class Ledger:
    """What every request got: an answer (acked), nothing before the kill (in flight), or a surprise."""

    acked: dict[int, tuple[Sent, list[Receipt]]] = field(default_factory=dict)
    in_flight: dict[int, Sent] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    killed: bool = False
    in_flight_at_kill: int = 0
    load_seconds: float = 0.0

    def receipts(self) -> dict[str, tuple[Sent, int, Receipt]]:
        """Every acknowledged event id -> (its request, its index there, its receipt)."""
        out: dict[str, tuple[Sent, int, Receipt]] = {}
        for sent, receipts in self.acked.values():
            for index, receipt in enumerate(receipts):
                out[receipt.id] = (sent, index, receipt)
        return out

    def events(self) -> int:
        return sum(len(receipts) for _, receipts in self.acked.values())


def make_request(number: int, rng: random.Random, mode: IdMode) -> Sent:
    single = rng.random() < 1 / 3
    size = 1 if single else rng.randint(10, 50)
    events: list[dict[str, Any]] = []
    for k in range(size):
        event: dict[str, Any] = {
            "action": ACTION,
            "outcome": "success",
            "actor": {"type": "service", "id": f"client-{number % 16}"},
            "target": {"type": "request", "id": str(number)},
            "message": f"durability request {number} event {k} of {size}",
            "details": {"request": number, "k": k, "n": size},
        }
        if mode == "all" or (mode == "mixed" and k % 2 == 0):
            event["id"] = f"dur-{number}-{k}"
        events.append(event)
    return Sent(number, events, single)


def parse_receipts(sent: Sent, response: httpx.Response) -> tuple[list[Receipt] | None, str | None]:
    """The receipts of a 200/201 answer, or why the answer is wrong."""
    where = f"request {sent.number} ({len(sent.events)} events) answered {response.status_code}"
    if response.status_code not in (200, 201):
        return None, f"{where}: {response.text[:300]}"
    try:
        raw = response.json()["receipts"]
        receipts = [Receipt(str(r["id"]), str(r["hash"]), bool(r["duplicate"])) for r in raw]
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"{where} with an unreadable body ({exc!r}): {response.text[:300]}"
    if len(receipts) != len(sent.events):
        return None, f"{where} with {len(receipts)} receipts"
    for receipt, client_id in zip(receipts, sent.client_ids, strict=True):
        if client_id is not None and receipt.id != client_id:
            return None, f"{where}: receipt id {receipt.id!r} for client id {client_id!r}"
        if len(receipt.hash) != 64:
            return None, f"{where}: receipt hash {receipt.hash!r} is not a SHA-256 hex digest"
    created = any(not r.duplicate for r in receipts)
    if response.status_code != (201 if created else 200):
        return None, f"{where} but {'some' if created else 'no'} receipt is new"
    return receipts, None


def client(url: str, secret: str, connections: int = 1) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=HTTP_TIMEOUT_S,
        trust_env=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def load_then_kill(
    server: ServerProcess,
    secret: str,
    *,
    workers: int,
    calm_seconds: float,
    burst_seconds: float,
    modes: Sequence[IdMode],
    rng: random.Random,
) -> Ledger:
    """Concurrent ingest with think time, then a burst without it, then SIGKILL while requests are in flight.

    Every answer before the kill must be a 201 with its receipts: anything else fails the test here.
    """
    ledger = Ledger()
    numbers = itertools.count()
    burst = asyncio.Event()
    url = server.url

    async def worker() -> None:
        async with client(url, secret) as http:
            while not ledger.killed:
                if not burst.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(burst.wait(), rng.uniform(0.05, 0.35))
                if ledger.killed:
                    return
                sent = make_request(next(numbers), rng, rng.choice(modes))
                ledger.in_flight[sent.number] = sent
                try:
                    response = await http.post("/v1/events", json=sent.body())
                except httpx.TransportError as exc:
                    if not ledger.killed:
                        del ledger.in_flight[sent.number]
                        ledger.unexpected.append(f"request {sent.number} failed before the kill: {exc!r}")
                    return  # after the kill: the outcome is unknown, it stays in flight
                del ledger.in_flight[sent.number]
                receipts, problem = parse_receipts(sent, response)
                if problem is not None:
                    ledger.unexpected.append(problem)
                elif receipts is not None:
                    ledger.acked[sent.number] = (sent, receipts)

    started = time.monotonic()
    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    try:
        await asyncio.sleep(calm_seconds)
        burst.set()
        await asyncio.sleep(burst_seconds)
        # No await between these: any answer handled from here on was sent before the kill.
        ledger.in_flight_at_kill = len(ledger.in_flight)
        ledger.killed = True
        server.kill()
        ledger.load_seconds = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*tasks), HTTP_TIMEOUT_S)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert not ledger.unexpected, f"{len(ledger.unexpected)} unexpected answers: {ledger.unexpected[:5]}"
    return ledger


# -- reading back ----------------------------------------------------------------


async def get_many(
    http: httpx.AsyncClient, ids: Iterable[str], concurrency: int = READ_CONCURRENCY
) -> dict[str, httpx.Response]:
    """GET /v1/events/{id} for every id, `concurrency` at a time."""
    pending = list(ids)
    answers: dict[str, httpx.Response] = {}

    async def reader(share: list[str]) -> None:
        for event_id in share:
            answers[event_id] = await http.get(f"/v1/events/{event_id}")

    await asyncio.gather(*(reader(pending[k::concurrency]) for k in range(concurrency)))
    return answers


async def list_all(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every event of the token's tenant sent through the API, following next_cursor."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1_000):
        params: dict[str, str | int] = {"limit": 1000, "source": "api", "order": "asc"}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get("/v1/events", params=params)
        assert response.status_code == 200, f"GET /v1/events answered {response.status_code}: {response.text[:300]}"
        page = response.json()
        events.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events
    raise AssertionError("GET /v1/events kept answering a next_cursor after 1000 pages")


async def store_caught_up(http: httpx.AsyncClient, seq: int, admin: str) -> bool:
    sinks = (await http.get("/readyz", headers={"Authorization": f"Bearer {admin}"})).json()["sinks"]
    return all(s["cursor"] >= seq for s in sinks.values())


async def journal_head(http: httpx.AsyncClient, admin: str) -> int:
    """The journal's last sequence number, which /readyz shows an admin token."""
    response = await http.get("/readyz", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 200, f"/readyz answered {response.status_code}: {response.text[:300]}"
    head: int = response.json()["journal"]["last_seq"]
    return head


def sample(items: Iterable[str], limit: int = 5) -> list[str]:
    return sorted(items)[:limit]


def log_problems(server: ServerProcess) -> list[str]:
    """Error lines and tracebacks in the server log (every start)."""
    return [
        line
        for line in server.log_text().splitlines()
        if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or "Traceback" in line
    ]


def check_verify(server: ServerProcess, when: str) -> str:
    result = server.verify()
    assert result.returncode == 0, (
        f"`eventlog verify` {when} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    assert result.stdout.startswith("ok:"), result.stdout
    return result.stdout.strip()


def describe(ledger: Ledger) -> str:
    return (
        f"{len(ledger.acked)} requests / {ledger.events()} events acknowledged in {ledger.load_seconds:.2f} s, "
        f"{ledger.in_flight_at_kill} requests in flight at the kill"
    )


# -- the tests -----------------------------------------------------------------


async def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random()
    with ServerProcess(tmp_path / "data") as server:
        secret = server.create_token(TENANT, SCOPES)
        admin = server.create_token("ops", ["admin"])

        ledger = await load_then_kill(
            server,
            secret,
            workers=16,
            calm_seconds=1.2,
            burst_seconds=0.15,
            modes=("none", "none", "all", "mixed"),
            rng=rng,
        )
        assert ledger.in_flight_at_kill > 0, f"nothing was in flight at the kill: {describe(ledger)}"
        assert ledger.events() > 0, describe(ledger)
        acked = ledger.receipts()
        assert len(acked) == ledger.events(), "one event id was acknowledged twice"
        assert not any(r.duplicate for _, _, r in acked.values()), "a fresh event was answered as a duplicate"

        restarted = time.monotonic()
        server.start()
        restart_seconds = time.monotonic() - restarted

        async with client(server.url, secret, READ_CONCURRENCY) as http:
            head = await journal_head(http, admin)

            # The journal is authoritative: GET by id must find every acked event at once.
            read_started = time.monotonic()
            answers = await get_many(http, acked)
            read_seconds = time.monotonic() - read_started
            missing = [i for i, r in answers.items() if r.status_code == 404]
            failed = [
                f"{i}: {r.status_code} {r.text[:200]}" for i, r in answers.items() if r.status_code not in (200, 404)
            ]
            assert not missing, (
                f"LOST: {len(missing)} of {len(acked)} acknowledged events are not readable after the restart "
                f"(e.g. {sample(missing)}); {describe(ledger)}"
            )
            assert not failed, f"{len(failed)} reads failed: {failed[:5]}"

            wrong: list[str] = []
            seqs: dict[int, str] = {}
            streams: set[str] = set()
            for event_id, response in answers.items():
                sent, index, receipt = acked[event_id]
                document = response.json()
                chain = document["chain"]
                expected = sent.events[index]
                streams.add(chain["stream"])
                if chain["seq"] in seqs:
                    wrong.append(f"{event_id}: chain.seq {chain['seq']} also belongs to {seqs[chain['seq']]}")
                seqs[chain["seq"]] = event_id
                if chain["hash"] != receipt.hash:
                    wrong.append(f"{event_id}: stored chain.hash {chain['hash']} != receipt hash {receipt.hash}")
                if document["id"] != event_id or document["tenant"] != TENANT or document["source"] != "api":
                    wrong.append(f"{event_id}: stored as id={document['id']} tenant={document['tenant']}")
                for key in ("action", "message", "details", "actor", "target"):
                    if document[key] != expected[key]:
                        wrong.append(f"{event_id}: {key} stored as {document[key]!r}, sent {expected[key]!r}")
            assert not wrong, f"{len(wrong)} acknowledged events differ from their receipts: {wrong[:5]}"
            assert len(streams) == 1, f"events of one node in several streams: {streams}"
            assert max(seqs) <= head, f"an acked event has seq {max(seqs)} beyond the journal head {head}"

            # The search store catches up through the fan-out.
            deadline = time.monotonic() + CATCH_UP_S
            while True:
                caught_up = await store_caught_up(http, head, admin)
                listed = await list_all(http)
                listed_ids = {e["id"] for e in listed}
                absent = acked.keys() - listed_ids
                if (caught_up and not absent) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert not absent, (
                f"{len(absent)} acknowledged events are still missing from GET /v1/events after {CATCH_UP_S} s "
                f"(e.g. {sample(absent)}); store caught up: {caught_up}"
            )
            assert caught_up, f"the search store did not reach journal seq {head} within {CATCH_UP_S} s"
            assert len(listed_ids) == len(listed), "GET /v1/events pages repeat events"
            for event in listed:
                if event["id"] in acked and event["chain"]["hash"] != acked[event["id"]][2].hash:
                    wrong.append(f"{event['id']}: listed chain.hash differs from the receipt")
            assert not wrong, f"the search store disagrees with the receipts: {wrong[:5]}"

            # Every request is all or nothing, and only acked or in-flight requests were stored.
            by_request: dict[int, set[int]] = defaultdict(set)
            for event in listed:
                if event["action"] == ACTION:
                    by_request[event["details"]["request"]].add(event["details"]["k"])
            torn: list[str] = []
            for number, ks in by_request.items():
                known = ledger.acked[number][0] if number in ledger.acked else ledger.in_flight.get(number)
                if known is None:
                    torn.append(f"request {number} is stored but was neither acknowledged nor in flight")
                elif ks != set(range(len(known.events))):
                    torn.append(f"request {number}: {len(ks)} of {len(known.events)} events stored")
            assert not torn, f"requests are not all-or-nothing: {torn[:5]}"
            committed_in_flight = sum(1 for n in ledger.in_flight if n in by_request)

            # The chain goes on after the crash.
            response = await http.post("/v1/events", json={"action": ACTION, "message": "after the restart"})
            assert response.status_code == 201, response.text
            after = response.json()["receipts"][0]
            stored = await http.get(f"/v1/events/{after['id']}")
            assert stored.status_code == 200, stored.text
            assert stored.json()["chain"]["seq"] > head
            assert stored.json()["chain"]["hash"] == after["hash"]

        verified_running = check_verify(server, "after the SIGKILL and restart")

        assert server.stop() in CLEAN_EXIT_CODES, f"graceful stop exited {server.last_exit_code}:\n{server.log_tail()}"
        verified_stopped = check_verify(server, "after a clean stop")
        assert "eventlog stopped" in server.log_tail(), server.log_tail()
        problems = log_problems(server)
        assert not problems, f"the server logged {len(problems)} errors: {problems[:5]}"
        print(
            f"\n{describe(ledger)}; {committed_in_flight} in-flight requests were committed; "
            f"restart took {restart_seconds:.2f} s; {len(acked)} GETs by id in {read_seconds:.2f} s\n"
            f"verify while running: {verified_running}\nverify after stop: {verified_stopped}"
        )


async def test_client_id_retry_after_sigkill_is_a_duplicate(tmp_path: Path) -> None:
    rng = random.Random()
    with ServerProcess(tmp_path / "data") as server:
        secret = server.create_token(TENANT, SCOPES)
        admin = server.create_token("ops", ["admin"])
        ledger = await load_then_kill(
            server, secret, workers=8, calm_seconds=0.8, burst_seconds=0.1, modes=("all",), rng=rng
        )
        assert ledger.acked, describe(ledger)
        server.start()

        async with client(server.url, secret, READ_CONCURRENCY) as http:

            async def retry(sents: Sequence[Sent]) -> dict[int, list[Receipt]]:
                results: dict[int, list[Receipt]] = {}
                problems: list[str] = []

                async def one(share: Sequence[Sent]) -> None:
                    for sent in share:
                        receipts, problem = parse_receipts(sent, await http.post("/v1/events", json=sent.body()))
                        if problem is not None:
                            problems.append(problem)
                        elif receipts is not None:
                            results[sent.number] = receipts

                await asyncio.gather(*(one(sents[k::READ_CONCURRENCY]) for k in range(READ_CONCURRENCY)))
                assert not problems, f"{len(problems)} retries answered wrongly: {problems[:5]}"
                return results

            # Acknowledged before the crash: 200, duplicate, the original hash, nothing appended.
            head = await journal_head(http, admin)
            retried = await retry([sent for sent, _ in ledger.acked.values()])
            wrong: list[str] = []
            for number, receipts in retried.items():
                original = ledger.acked[number][1]
                for before, now in zip(original, receipts, strict=True):
                    if not now.duplicate or now.hash != before.hash or now.id != before.id:
                        wrong.append(f"request {number}: retry of {before} answered {now}")
            assert not wrong, f"{len(wrong)} retries of acknowledged events are not duplicates: {wrong[:5]}"
            assert await journal_head(http, admin) == head, "retrying acknowledged client ids appended events"

            # In flight at the crash: stored entirely (200, all duplicates) or not at all (201, all new).
            in_flight = list(ledger.in_flight.values())
            first = await retry(in_flight)
            mixed = [n for n, rs in first.items() if len({r.duplicate for r in rs}) != 1]
            assert not mixed, f"in-flight requests were stored in part: {mixed}"
            again = await retry(in_flight)
            for number, receipts in again.items():
                for before, now in zip(first[number], receipts, strict=True):
                    if not now.duplicate or now.hash != before.hash:
                        wrong.append(f"request {number}: second retry of {before} answered {now}")
            assert not wrong, f"second retries are not duplicates: {wrong[:5]}"
            retried_ids = {r.id: r.hash for rs in first.values() for r in rs}
            answers = await get_many(http, retried_ids)
            for event_id, response in answers.items():
                if response.status_code != 200 or response.json()["chain"]["hash"] != retried_ids[event_id]:
                    wrong.append(f"{event_id}: {response.status_code} {response.text[:200]}")
            assert not wrong, f"retried in-flight events are not readable as answered: {wrong[:5]}"

            # Same id, other content: still the original event.
            sent, receipts = next(iter(ledger.acked.values()))
            original_id, original_hash = receipts[0].id, receipts[0].hash
            response = await http.post(
                "/v1/events", json={"id": original_id, "action": "durability.changed", "message": "changed"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["receipts"] == [{"id": original_id, "hash": original_hash, "duplicate": True}]
            stored = (await http.get(f"/v1/events/{original_id}")).json()
            assert stored["message"] == sent.events[0]["message"]
            assert stored["chain"]["hash"] == original_hash

        # Idempotency is per tenant: another tenant's same id is a new event.
        other_secret = server.create_token("durability-other", SCOPES)
        async with client(server.url, other_secret) as other:
            response = await other.post("/v1/events", json={"id": original_id, "action": ACTION, "message": "other"})
            assert response.status_code == 201, response.text
            receipt = response.json()["receipts"][0]
            assert receipt["duplicate"] is False
            assert receipt["hash"] != original_hash
            assert (await other.get(f"/v1/events/{original_id}")).json()["message"] == "other"

        check_verify(server, "after the SIGKILL, restart and retries")
        assert server.stop() in CLEAN_EXIT_CODES, f"graceful stop exited {server.last_exit_code}:\n{server.log_tail()}"
        check_verify(server, "after a clean stop")
        problems = log_problems(server)
        assert not problems, f"the server logged {len(problems)} errors: {problems[:5]}"
        print(
            f"\n{describe(ledger)}; retried {len(retried)} acked and {len(in_flight)} in-flight requests, "
            f"{sum(1 for rs in first.values() if rs[0].duplicate)} of those were committed before the kill"
        )
