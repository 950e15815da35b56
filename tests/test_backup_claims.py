"""The claim that keeps two runs of one backup schedule from both writing (``store.Claim``),
against moto's S3 (its conditional writes: If-None-Match and If-Match): a live holder is given
way to, a dead one (no heartbeat for a lease) is taken over, and a holder that lost its claim
knows it before writing a manifest."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from backup.errors import BackupError
from backup.store import Claim, Store
from botocore.exceptions import ClientError

from tests.backup_harness import Moto

LEASE = 1.0


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    server = Moto().start()
    yield server
    server.stop()


@pytest.fixture
def store(moto: Moto) -> Store:
    return Store(moto.bucket(f"claims-{uuid.uuid4().hex[:12]}"), moto.client("s3"))


def claim(store: Store, job: str = "backup-postgres-1") -> Claim:
    return Claim(
        store,
        "postgresql/db/20261130T0200Z.claim",
        job,
        done="postgresql/db/20261130T0200Z.manifest.json",
        lease=LEASE,
    )


def test_the_first_run_takes_the_claim_and_a_second_gives_way_to_a_live_holder(
    store: Store,
) -> None:
    first = claim(store)
    assert first.acquire() is None
    first.keep()  # renews every LEASE / 4
    try:
        started = time.monotonic()
        reason = claim(store, "backup-postgres-2").acquire()
        assert reason is not None and "alive" in reason, reason
        assert time.monotonic() - started >= LEASE, "it watched the heartbeat for a whole lease"
        assert not first.lost
    finally:
        first.release()


def test_a_dead_holder_is_taken_over_and_learns_it_lost(store: Store) -> None:
    dead = claim(store)
    assert dead.acquire() is None  # and never renews: its pod was killed
    time.sleep(LEASE * 1.2)
    successor = claim(store)
    assert successor.acquire() is None, "a claim without a heartbeat for a lease is taken over"
    document = store.get_json(successor.key)
    assert document is not None and document["holder"] != ""
    dead.keep()  # the "dead" holder wakes up: its next renewal fails, it knows it lost
    deadline = time.monotonic() + 5
    while not dead.lost and time.monotonic() < deadline:
        time.sleep(0.05)
    dead.release()
    assert dead.lost


def test_a_finished_backup_makes_waiting_runs_give_way(store: Store) -> None:
    holder = claim(store)
    assert holder.acquire() is None
    holder.keep()
    reasons: list[str | None] = []
    waiting = threading.Thread(target=lambda: reasons.append(claim(store, "other").acquire()))
    waiting.start()
    time.sleep(LEASE / 4)
    assert store.put_json(
        "postgresql/db/20261130T0200Z.manifest.json", {"done": True}, only_if_absent=True
    )
    waiting.join()
    holder.release()
    assert reasons and reasons[0] is not None and "completed by another run" in reasons[0]


def test_only_one_of_two_simultaneous_takeovers_wins(store: Store) -> None:
    assert claim(store).acquire() is None
    time.sleep(LEASE * 1.2)  # the holder died
    results: list[str | None] = []
    winners: list[Claim] = []
    barrier = threading.Barrier(2)

    def take() -> None:
        contender = claim(store, f"job-{threading.get_ident()}")
        barrier.wait()
        reason = contender.acquire()
        if reason is None:
            contender.keep()  # the winner works and renews, as a real run does
            winners.append(contender)
        results.append(reason)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for winner in winners:
        winner.release()
    assert sorted(r is None for r in results) == [False, True], results


class PrefixListingOnly:
    """S3 as the jobs' roles see it: ``s3:ListBucket`` only under their prefix (a condition on
    ``s3:prefix``, which a GET does not carry), so a GET of a missing key is answered 403, not
    404 (AWS: "If you don't have the s3:ListBucket permission, Amazon S3 returns 403")."""

    def __init__(self, real: object, denied: set[str]) -> None:
        self._real = real
        self._denied = denied

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def _forbidden(self, operation: str) -> ClientError:
        return ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
             "ResponseMetadata": {"HTTPStatusCode": 403}},
            operation,
        )  # fmt: skip

    def get_object(self, **arguments: str) -> object:
        present = self._real.list_objects_v2(Bucket=arguments["Bucket"], Prefix=arguments["Key"])  # type: ignore[attr-defined]
        if arguments["Key"] in self._denied or not present.get("Contents"):
            raise self._forbidden("GetObject")
        return self._real.get_object(**arguments)  # type: ignore[attr-defined]

    def head_object(self, **arguments: str) -> object:
        present = self._real.list_objects_v2(Bucket=arguments["Bucket"], Prefix=arguments["Key"])  # type: ignore[attr-defined]
        if arguments["Key"] in self._denied or not present.get("Contents"):
            raise self._forbidden("HeadObject")
        return self._real.head_object(**arguments)  # type: ignore[attr-defined]


def test_a_missing_manifest_answered_403_reads_as_missing_and_a_real_denial_stays_an_error(
    store: Store,
) -> None:
    restricted = Store(store.bucket, PrefixListingOnly(store.s3, {"postgresql/db/secret.json"}))
    assert restricted.get_json("postgresql/db/20261130T0200Z.manifest.json") is None
    assert restricted.size("postgresql/db/20261130T0200Z.dump") is None
    assert store.put_json("postgresql/db/secret.json", {"x": 1}, only_if_absent=True)
    with pytest.raises(BackupError, match="AccessDenied"):
        restricted.get_json("postgresql/db/secret.json")
    assert store.put_json("postgresql/db/ok.json", {"x": 2}, only_if_absent=True)
    assert restricted.get_json("postgresql/db/ok.json") == {"x": 2}
    assert claim(restricted).acquire() is None, "a first run can take the claim"
