"""Consortium ledger benchmark: signed appends per second, proof sizes and verify times at a million
entries (extrapolated to 20 million), OPRF tokens per second, and a PSI query of 10,000 tokens against a
million reported ones — each next to a simple baseline measured in the same run.

    .venv/bin/python bench/consortium.py [--entries 1000000] [--appends 20000] [--quick]

Runs on SQLite in a temporary folder (the default storage). ``--quick`` uses 100,000 entries.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import math
import os
import random
import resource
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from riskguard.consortium.entries import Evidence, Genesis, Member, Report, encode, expiry, sign_entry
from riskguard.consortium.ledger import SqlLedger
from riskguard.consortium.merkle import leaf_hash, root_of
from riskguard.consortium.note import Signer
from riskguard.consortium.proofs import verify_consistency, verify_inclusion
from riskguard.consortium.psi import PsiClient, PsiServer
from riskguard.consortium.state import LedgerState
from riskguard.consortium.tokens import TokenClient, TokenService
from riskguard.store.db import migrate, open_engine

CATEGORIES = ("mule", "telecom-fraud", "proxy-agent", "account-takeover")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report_body(rng: random.Random, member: str, now: datetime) -> Report:
    return Report(
        subject=rng.randbytes(32).hex(),
        subject_kind="account",
        category=rng.choice(CATEGORIES),  # type: ignore[arg-type]
        severity=rng.randint(1, 5),
        evidence=Evidence(hash=rng.randbytes(32).hex(), held_by=member, reference=f"CASE-{rng.randint(1, 99999)}"),
        legal_basis="AML law art. 16; consortium agreement s.4",
        expires_at=expiry(now, 730),
    )


def bench_appends(tmp: Path, appends: int, fill: int) -> tuple[SqlLedger, list[bytes]]:
    rng = random.Random(7)
    members = [Signer.generate(f"bank-{i}") for i in range(4)]
    log_key = Signer.generate("bench/log")
    genesis = Genesis(
        origin="bench/log",
        log_key=str(log_key.verifier),
        token_key="00" * 32,
        token_member="bank-0",
        members=[Member(s.name, s.name, str(s.verifier), ["admin", "reporter", "witness"]) for s in members],
        witness_threshold=2,
    )
    engine = open_engine(f"sqlite:///{tmp}/log.db", sqlite_synchronous="NORMAL")
    migrate(engine)
    ledger = SqlLedger(engine, "bench/log")
    state = LedgerState()
    first = sign_entry(members[0], "genesis", genesis)
    state.admit(first, 0)
    ledger.append([(first, encode(first))])
    now = datetime.now(UTC)

    # the log's accept path, one entry per transaction: member signs, log verifies and checks, appends
    started = time.perf_counter()
    for _ in range(appends):
        member = members[rng.randrange(4)]
        entry = sign_entry(member, "report", report_body(rng, member.name, now), at=now)
        data = encode(entry)
        body = state.check(entry)
        index = ledger.append([(entry, data)])
        state.apply(entry, body, index)
    single = appends / (time.perf_counter() - started)

    # the same with the log batching 1,000 entries into one transaction (group commit)
    batch_n = appends
    started = time.perf_counter()
    pending = []
    for _ in range(batch_n):
        member = members[rng.randrange(4)]
        entry = sign_entry(member, "report", report_body(rng, member.name, now), at=now)
        state.check(entry)
        pending.append((entry, encode(entry)))
        if len(pending) == 1000:
            base = ledger.append(pending)
            for offset, (e, _) in enumerate(pending):
                state.apply(e, e.typed(), base + offset)
            pending = []
    batched = batch_n / (time.perf_counter() - started)

    # baseline: the same bytes inserted into a plain SQLite table, one transaction each, nothing signed
    plain = sqlite3.connect(tmp / "plain.db")
    plain.execute("PRAGMA journal_mode=WAL")
    plain.execute("PRAGMA synchronous=NORMAL")
    plain.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, data BLOB)")
    sample = ledger.leaves(1, 1 + appends)
    started = time.perf_counter()
    for i, data in enumerate(sample):
        with plain:
            plain.execute("INSERT INTO t VALUES (?, ?)", (i, data))
    baseline = len(sample) / (time.perf_counter() - started)
    plain.close()
    print(
        f"signed appends (member signs, log verifies signature + rules, SQLite, one commit each): "
        f"{single:,.0f}/s; group commit of 1,000: {batched:,.0f}/s; "
        f"baseline plain SQLite insert of the same bytes: {baseline:,.0f}/s"
    )

    # fill to the target size with signed entries (group commit, no rule checks: bulk load)
    started = time.perf_counter()
    while ledger.size < fill:
        chunk = []
        for _ in range(min(5000, fill - ledger.size)):
            member = members[rng.randrange(4)]
            entry = sign_entry(member, "report", report_body(rng, member.name, now), at=now)
            chunk.append((entry, encode(entry)))
        ledger.append(chunk)
    print(
        f"filled to {ledger.size:,} signed entries in {time.perf_counter() - started:.0f} s; "
        f"peak RSS {rss_mb():,.0f} MB"
    )
    size_db = (tmp / "log.db").stat().st_size + sum(p.stat().st_size for p in tmp.glob("log.db-*"))
    print(f"database: {size_db / 1e6:,.0f} MB ({size_db / ledger.size:,.0f} B per entry)")
    return ledger, [log_key.name]


def bench_proofs(ledger: SqlLedger) -> None:
    n = ledger.size
    rng = random.Random(11)
    root = ledger.root()
    indices = [rng.randrange(n) for _ in range(2000)]
    leaves = {i: leaf_hash(ledger.leaves(i, i + 1)[0]) for i in indices[:200]}
    gen, ver, sizes = [], [], []
    for i in indices[:200]:
        t0 = time.perf_counter()
        proof = ledger.inclusion_proof(i, n)
        t1 = time.perf_counter()
        verify_inclusion(leaves[i], i, n, proof, root)
        t2 = time.perf_counter()
        gen.append(t1 - t0)
        ver.append(t2 - t1)
        sizes.append(32 * len(proof))
    cgen, cver, csizes = [], [], []
    for _ in range(200):
        first = rng.randrange(1, n)
        t0 = time.perf_counter()
        proof = ledger.consistency_proof(first, n)
        t1 = time.perf_counter()
        verify_consistency(first, n, proof, ledger.root(first), root)
        t2 = time.perf_counter()
        cgen.append(t1 - t0)
        cver.append(t2 - t1)
        csizes.append(32 * len(proof))
    print(
        f"inclusion proof at {n:,}: {max(sizes)} B (≤ {math.ceil(math.log2(n))} hashes), generate p50 "
        f"{pct(gen, 0.5) * 1e6:.0f} µs, verify p50 {pct(ver, 0.5) * 1e6:.0f} µs p99 {pct(ver, 0.99) * 1e6:.0f} µs"
    )
    print(
        f"consistency proof at {n:,}: up to {max(csizes)} B (mean {statistics.mean(csizes):.0f} B), generate p50 "
        f"{pct(cgen, 0.5) * 1e6:.0f} µs, verify p50 {pct(cver, 0.5) * 1e6:.0f} µs p99 {pct(cver, 0.99) * 1e6:.0f} µs"
    )
    started = time.perf_counter()
    hashes = [leaf_hash(d) for d in ledger.iter_leaves()]
    rehash = time.perf_counter() - started
    started = time.perf_counter()
    assert root_of(hashes) == root
    recompute = time.perf_counter() - started
    print(
        f"baseline without proofs: read and hash all {n:,} entries {rehash:.1f} s, then recompute the root "
        f"{recompute:.1f} s (what a member without proofs does to check one entry)"
    )
    started = time.perf_counter()
    reopened = SqlLedger(ledger.engine, ledger.origin)
    print(f"node restart (tree rebuilt from the stored entries): {time.perf_counter() - started:.1f} s")
    assert reopened.root() == root
    scale = 20_000_000 / n
    depth20 = math.ceil(math.log2(20_000_000))
    print(
        f"extrapolated to 20M: inclusion proof {32 * depth20} B ({depth20} hashes), verify p50 ≈ "
        f"{pct(ver, 0.5) * 1e6 * depth20 / math.ceil(math.log2(n)):.0f} µs; tree in memory "
        f"{64 * 20_000_000 / 1e9:.2f} GB; restart rebuild ≈ {(time.perf_counter() - started) * scale:.0f} s "
        f"(a tile-based ledger avoids both: docs/consortium.md, Scale)"
    )


def bench_tokens(tmp: Path, count: int) -> None:
    engine = open_engine(f"sqlite:///{tmp}/tokens.db", sqlite_synchronous="NORMAL")
    migrate(engine)
    service = TokenService(engine, secrets.token_bytes(32), limit=10**9)
    client = TokenClient(service.public_key, lambda b: service.evaluate("bank-0", b))
    phones = [f"+86 13{random.Random(3).randrange(10**9):09d}" for _ in range(count)]
    started = time.perf_counter()
    tokens = client.tokens("phone", phones)
    rate = len(tokens) / (time.perf_counter() - started)
    key = secrets.token_bytes(32)
    started = time.perf_counter()
    for phone in phones:
        hmac.new(key, phone.encode(), hashlib.sha256).digest()
    keyed = count / (time.perf_counter() - started)
    print(
        f"OPRF tokens (blind, evaluate with batch proof, verify, unblind; batches of 1,000, one core): {rate:,.0f}/s; "
        f"baseline HMAC-SHA256 keyed hash: {keyed:,.0f}/s — at that rate one core hashes all 1.9 billion "
        f"Chinese mobile numbers in {1.9e9 / keyed / 3600:.1f} h, which is why a keyed hash is brute-forceable"
    )


def bench_psi(reported: int, queried: int) -> None:
    rng = random.Random(5)
    server_set = [rng.randbytes(32).hex() for _ in range(reported)]
    ours = rng.sample(server_set, queried // 10) + [rng.randbytes(32).hex() for _ in range(queried - queried // 10)]
    server = PsiServer()
    started = time.perf_counter()
    server.update(server_set)
    _, setups = server.setups()
    setup_s = time.perf_counter() - started
    client = PsiClient()
    started = time.perf_counter()
    request = client.request(ours)
    response = server.process(request)
    found = client.intersect(ours, setups, response)
    query_s = time.perf_counter() - started
    assert len(found) >= queried // 10
    started = time.perf_counter()
    server.update([*server_set, rng.randbytes(32).hex()])
    server.setups()
    reshard_s = time.perf_counter() - started
    lookup = set(server_set)
    started = time.perf_counter()
    plain = [t for t in ours if t in lookup]
    plain_s = time.perf_counter() - started
    assert len(plain) == queried // 10
    print(
        f"PSI {queried:,} tokens against {reported:,}: query {query_s:.2f} s (request {len(request) / 1e6:.2f} MB, "
        f"response {len(response) / 1e6:.2f} MB, setup {sum(map(len, setups)) / 1e6:.2f} MB once); server setup "
        f"{setup_s:.0f} s once, {reshard_s:.2f} s after a new report (delta setup); baseline plain set lookup "
        f"(no privacy): {plain_s * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.appends, args.tokens = 100_000, 5_000, 5_000
    print(f"consortium bench: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        ledger, _ = bench_appends(tmp, args.appends, args.entries)
        bench_proofs(ledger)
        ledger.engine.dispose()
        bench_tokens(tmp, args.tokens)
        bench_psi(args.entries, 10_000)
    print(f"peak RSS {rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
