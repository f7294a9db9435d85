"""Three member nodes on loopback ports: A runs the log, the token service and a witness; B and C mirror
the log, witness it, and B feeds its riskguard. A reports a mule account, B's decision on a transfer to
it reviews it, C's witness catches a forked log, A's retraction clears the hit, and nothing on any log
copy carries the raw identifier."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select, update

from riskguard.app import RiskGuard
from riskguard.consortium.client import NodeClient, PeerError
from riskguard.consortium.entries import EntryError, Evidence, Genesis, Member, Report, encode, expiry, sign_entry
from riskguard.consortium.http import create_node_app
from riskguard.consortium.ledger import SqlLedger, TamperedLog
from riskguard.consortium.merkle import MerkleTree, leaf_hash
from riskguard.consortium.node import Node, NotWitnessed
from riskguard.consortium.note import Checkpoint, NoteError, SignedCheckpoint, Signer, sign_note
from riskguard.consortium.tables import consortium_checkpoints, consortium_leaves
from riskguard.consortium.tokens import TokenService
from riskguard.store.db import migrate, open_engine

from conftest import make_settings, transfer

MULE = "6222-0210-0000-7781"  # the mule account's number at bank B (a payee of B's customers)
STRATEGY = """
name: consortium_aware
version: 1
features:
  - {name: payee_reported, aggregate: published, source: consortium.reported, entity: counterparty_id}
  - {name: payee_reporters, aggregate: published, source: consortium.reporters, entity: counterparty_id}
  - {name: payee_mule, aggregate: published, source: consortium.mule, entity: counterparty_id}
lists:
  - {name: consortium_reported, entity: counterparty_id, kind: watch}
rules:
  - id: consortium_reported_payee
    when: 'features.payee_reported >= 1.0'
    action: review
    score: 60
    reason: The payee is reported as a mule on the consortium ledger
thresholds: {block: 90, review: 60, challenge: 40}
"""


@dataclass
class Member_:
    signer: Signer
    sock: socket.socket
    url: str


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class Served:
    """A node's HTTP app served by uvicorn in a thread, on a socket bound before the node existed."""

    def __init__(self, node: Node, sock: socket.socket) -> None:
        config = uvicorn.Config(create_node_app(node), log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Consortium:
    a: Node
    b: Node
    c: Node
    guard_b: RiskGuard
    log_signer: Signer
    genesis: bytes
    tmp: Path


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    members = {}
    for name in ("bank-a", "bank-b", "pay-c"):
        sock = _listen()
        members[name] = Member_(Signer.generate(name), sock, f"http://127.0.0.1:{sock.getsockname()[1]}")
    log_signer = Signer.generate("consortium.example/log")
    seed = secrets.token_bytes(32)
    engine_a = open_engine(f"sqlite:///{tmp_path}/a.db")
    migrate(engine_a)
    token_key = TokenService(engine_a, seed).public_key.hex()
    roles = {
        "bank-a": ["admin", "reporter", "witness", "tokens", "log"],
        "bank-b": ["reporter", "witness"],
        "pay-c": ["reporter", "witness"],
    }
    genesis = Genesis(
        origin="consortium.example/log",
        log_key=str(log_signer.verifier),
        token_key=token_key,
        token_member="bank-a",
        members=[
            Member(id=n, name=n.upper(), key=str(m.signer.verifier), roles=roles[n], url=m.url)
            for n, m in members.items()
        ],
        witness_threshold=2,
        appeal_response_days=30,
    )
    genesis_bytes = encode(sign_entry(members["bank-a"].signer, "genesis", genesis))
    a = Node(
        signer=members["bank-a"].signer,
        genesis=genesis_bytes,
        roles=["log", "witness", "tokens"],
        engine=engine_a,
        log_signer=log_signer,
        token_seed=seed,
        token_limit=50,
    )
    guard_b = RiskGuard(make_settings(f"sqlite:///{tmp_path}/b.db"), background=False)
    guard_b.publish(STRATEGY, actor="test")
    b = Node(
        signer=members["bank-b"].signer,
        genesis=genesis_bytes,
        roles=["mirror", "witness", "gateway"],
        upstream=members["bank-a"].url,
        guard=guard_b,
    )
    c = Node(
        signer=members["pay-c"].signer,
        genesis=genesis_bytes,
        roles=["mirror", "witness"],
        database_url=f"sqlite:///{tmp_path}/c.db",
        upstream=members["bank-a"].url,
        peers=[members["bank-b"].url],
    )
    servers = [Served(node, members[node.member].sock) for node in (a, b, c)]
    try:
        yield Consortium(a, b, c, guard_b, log_signer, genesis_bytes, tmp_path)
    finally:
        for server in servers:
            server.stop()
        for node in (a, b, c):
            node.close()
        guard_b.close()


def _raw_forms(value: str) -> list[bytes]:
    digits = "".join(ch for ch in value if ch.isdigit())
    return [value.encode(), digits.encode(), digits[-8:].encode()]


def _scan_log(node: Node, forbidden: list[bytes]) -> None:
    with node.engine.connect() as connection:
        leaves = [bytes(r[0]) for r in connection.execute(select(consortium_leaves.c.data))]
        notes = [r[0].encode() for r in connection.execute(select(consortium_checkpoints.c.note))]
    assert leaves
    for blob in leaves + notes:
        for raw in forbidden:
            assert raw not in blob, f"a raw identifier reached {node.member}'s copy of the log"


def forged_report(node: Any, basis: str) -> Any:
    """A report signed with ``node``'s key for a history the log never held (the material of a fork)."""
    return sign_entry(
        node.signer,
        "report",
        Report(
            subject="ab" * 32,
            subject_kind="account",
            category="mule",
            severity=5,
            evidence=Evidence(hash="cd" * 32, held_by="bank-a"),
            legal_basis=basis,
            expires_at=expiry(node.now(), 30),
        ),
    )


def test_three_member_nodes(consortium: Consortium) -> None:
    a, b, c, guard = consortium.a, consortium.b, consortium.c, consortium.guard_b
    a.publish_checkpoint()
    assert b.sync() == 1 and c.sync() == 1  # the genesis, verified against a 2-of-3 witnessed checkpoint

    # B watches its customers' payees (tokenised by A's token service; B keeps token → number)
    assert b.gateway is not None
    assert b.gateway.watch("account", [MULE, "6222-0210-0000-1000"]) == 2
    before = guard.decide(transfer("t1", counterparty_id=MULE), with_explain=True)
    assert before["decision"] == "allow"

    # A files a report on the same account, written its own way (normalised to the same token)
    filed = a.report(
        subject_kind="account",
        value="6222021000007781",
        category="mule",
        severity=4,
        evidence=b"case file 2026-118: inbound from 14 victims, out within 9 minutes",
        legal_basis="AML law art. 16; consortium agreement s.4",
        reference="CASE-118",
        details={"note": "first-layer account, rented", "account": "6222021000007781"},
    )
    report_id = filed["id"]
    assert b.sync() == 1 and c.sync() == 1
    assert b.refresh_gateway()["consortium.reported"] == 1
    review = guard.decide(transfer("t2", counterparty_id=MULE), with_explain=True)
    assert review["decision"] == "review"
    assert [r["rule"] for r in review["reasons"]] == ["consortium_reported_payee"]
    assert review["explain"]["features"]["payee_reporters"] == "1.0"
    assert guard.decide(transfer("t3", counterparty_id="6222-0210-0000-1000"))["decision"] == "allow"
    assert [e["value"] for e in guard.lists.entries("consortium_reported")] == [MULE]  # B's own spelling

    # B asks A privately which of its watched tokens are reported (PSI: A never sees B's tokens)
    watched = b.gateway.watched()
    reported = b.psi_query(a.member_url("bank-a"), sorted(watched))
    assert [watched[t] for t in reported] == [MULE]

    # B reads the sealed details with the key A serves; A erases it and the log still verifies
    assert b.read_details(report_id)["note"] == "first-layer account, rented"
    assert a.details.erase(report_id)
    with pytest.raises(PeerError) as gone:
        b.read_details(report_id)
    assert gone.value.status == 410
    proved = b.prove(report_id)
    assert proved["index"] == 1 and proved["size"] == 2

    # C's witness catches a fork: A's log key signs another history of the same size
    true_size = a.ledger.size
    forged = forged_report(a, "forged history")
    fork_tree = MerkleTree()
    fork_tree.extend([leaf_hash(d) for d in a.ledger.leaves(0, true_size - 1)] + [leaf_hash(encode(forged))])
    text = Checkpoint(a.origin, true_size, fork_tree.root()).text()
    forked_note = sign_note(text, [consortium.log_signer])
    with pytest.raises(PeerError) as caught:
        a.client.add_checkpoint(a.member_url("pay-c"), forked_note, true_size, [])
    assert caught.value.status == 409 and caught.value.body["fork"] is True
    (fork,) = c.witness.forks()  # type: ignore[union-attr]
    seen = SignedCheckpoint.open(fork["evidence"]["seen"], a.log_key).checkpoint
    shown = SignedCheckpoint.open(fork["evidence"]["shown"], a.log_key).checkpoint
    assert seen.size == shown.size and seen.root != shown.root  # both signed by the log: proof of a fork
    with pytest.raises(NotWitnessed):
        b.accept(forked_note)  # no client takes a checkpoint without 2 of 3 cosignatures

    # A retracts; B's next refresh drops the hit and the list entry
    a.retract(report_id, "filed in error: the account holder was a victim")
    assert b.sync() == 1
    b.refresh_gateway()
    assert guard.decide(transfer("t4", counterparty_id=MULE))["decision"] == "allow"
    assert guard.lists.entries("consortium_reported") == []
    assert c.sync() == 1 and c.gossip() == []  # C and B agree on the true history

    # nothing on any copy of the log (entries and checkpoints) carries the raw identifier
    forbidden = [*_raw_forms(MULE), b"first-layer account, rented"]
    for node in (a, b, c):
        _scan_log(node, forbidden)
    assert a.state.contributions(a.now())["bank-a"] == {
        "filed": 1,
        "live": 0,
        "retracted": 1,
        "overturned": 0,
        "matched": 0,
    }


def test_a_mirror_refuses_tampered_entries_and_a_node_refuses_a_tampered_store(consortium: Consortium) -> None:
    a, b = consortium.a, consortium.b
    a.publish_checkpoint()
    b.sync()
    a.report(
        subject_kind="phone",
        value="+86 138 1234 5678",
        category="telecom-fraud",
        severity=3,
        evidence=b"call records",
        legal_basis="anti-fraud law art. 25",
    )
    # tamper with A's stored entry after it was signed into a checkpoint: B's verification fails
    with a.engine.begin() as connection:
        data = connection.execute(select(consortium_leaves.c.data).where(consortium_leaves.c.idx == 1)).scalar_one()
        connection.execute(
            update(consortium_leaves)
            .where(consortium_leaves.c.idx == 1)
            .values(data=bytes(data).replace(b'"severity":3', b'"severity":1'))
        )
    with pytest.raises(EntryError, match="signature"):  # B fetches it and refuses it
        b.sync()
    assert b.ledger.size == 1 and b.state.size == 1
    with pytest.raises(TamperedLog):
        SqlLedger(a.engine, a.origin, log_key=a.log_key)  # A's own restart catches it too


def test_a_forged_checkpoint_and_an_unknown_member_are_refused(consortium: Consortium) -> None:
    a, b = consortium.a, consortium.b
    signed = a.publish_checkpoint()
    tampered = signed.note.replace(signed.note.split("\n")[1], "5", 1)
    with pytest.raises(NoteError):
        b.accept(tampered)
    # the member's own operations over HTTP: only with its own key, and identifiers screened
    url = a.member_url("bank-a")
    own = {
        "subject_kind": "phone",
        "value": "+86 139 0000 1111",
        "category": "telecom-fraud",
        "severity": 3,
        "evidence_sha256": "ab" * 32,
        "legal_basis": "anti-fraud law art. 25",
    }
    filed = a.client.call("POST", url, "/consortium/v1/own/reports", own)
    assert filed["index"] == 1 and a.state.reports[filed["id"]].report.evidence.hash == "ab" * 32
    with pytest.raises(PeerError) as foreign:
        b.client.call("POST", url, "/consortium/v1/own/reports", own)
    assert foreign.value.status == 403
    with pytest.raises(PeerError) as screened:
        a.client.call("POST", url, "/consortium/v1/own/reports", {**own, "legal_basis": "caller 13900001111"})
    assert screened.value.status == 422 and "raw identifiers" in str(screened.value)
    outsider = NodeClient(Signer.generate("bank-x"))
    with pytest.raises(PeerError) as refused:
        outsider.checkpoint(a.member_url("bank-a"))
    assert refused.value.status == 401
    outsider.close()


def test_a_split_view_is_caught_by_gossip(consortium: Consortium) -> None:
    a, b, c = consortium.a, consortium.b, consortium.c
    a.publish_checkpoint()
    b.sync()
    c.sync()
    # the log shows C a history that extends size 1 consistently, but is not the one it shows B
    forged = forged_report(a, "another history")
    fork_tree = MerkleTree()
    fork_tree.extend([leaf_hash(consortium.genesis), leaf_hash(encode(forged))])
    text = Checkpoint(a.origin, 2, fork_tree.root()).text()
    c_url = a.member_url("pay-c")
    assert a.client.add_checkpoint(
        c_url, sign_note(text, [consortium.log_signer]), 1, fork_tree.consistency_proof(1, 2)
    )
    a.report(
        subject_kind="account",
        value="6222021000009999",
        category="mule",
        severity=2,
        evidence=b"x",
        legal_basis="AML law art. 16",
    )  # the true size 2: B cosigns it, C refuses it
    b.sync()
    assert len(c.witness.forks()) == 1  # type: ignore[union-attr]
    found = c.gossip()  # and comparing notes with B shows the split view, from B's signed checkpoint
    assert len(found) == 1 and "two roots signed for size 2" in found[0]
