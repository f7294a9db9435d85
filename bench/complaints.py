"""Organised complaints at scale: bulk clustering of a million complaints, incremental matching, rings
found against the simulator's agent rings, and a baseline of exact pairwise similarity, in one run.

The million-complaint corpus is made by the simulator's own code, without the rest of a world: a
population (``sim.population``), the proxy rights-defence agents of ``sim.rights`` (their bursts,
devices, phones, refund accounts and templates), and ordinary complaints from ``sim.background``.
With ``--names`` (the default) each text also carries the customer's name, as real complaints do, so
nearly every text is distinct and the LSH has to find near-duplicates rather than exact repeats.

Then full simulated worlds (every event type, all typologies of the issue at high intensity) are
analysed from their Parquet files for the agent-ring and intermediary-ring precision and recall: the
seed the thresholds were tuned on and a held-out seed.

    python bench/complaints.py                      # 1,000,000 complaints (about 10 minutes here)
    python bench/complaints.py --complaints 100000  # a quicker run
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from riskguard.complaints import HANDLE, REVIEW, VERIFY, ComplaintAnalyzer, Record
from riskguard.complaints.evaluate import evaluate, score, world_truth
from riskguard.complaints.records import from_frame, read_events
from riskguard.complaints.text import Bands, MinHasher, normalise, shingle_table
from riskguard.complaints.textindex import band_keys
from riskguard.runtime import tune_gc
from riskguard.sim import rights
from riskguard.sim.background import Background
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.context import WorldContext
from riskguard.sim.population import build_population
from riskguard.sim.rhythm import DAY_MS
from riskguard.sim.table import CHANNELS, EventTable, T, TextTable
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉建国志强淑珍春梅海燕雪梅波斌宇浩凯"
    "健俊帆帅旭宁龙林欢佳怡婷雪慧颖晨"
)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def corpus(n: int, seed: int, names: bool) -> tuple[list[Record], dict[str, str | None]]:
    """About ``n`` complaints: agents' (sim.rights) and ordinary ones (sim.background) over 30 days."""
    days = 30
    accounts = max(200_000, 2 * n)
    intensity = {**dict.fromkeys(TYPOLOGIES, 0.0), "proxy_rights_agent": min(100.0, 0.05 * n / accounts * 200_000 / 55)}
    config = WorldConfig(accounts=accounts, days=days, seed=seed, intensity=intensity)
    streams = np.random.SeedSequence(seed).spawn(3)
    pop = build_population(config, np.random.default_rng(streams[0]))
    ctx = WorldContext(config, pop, TextTable())
    rights.simulate(ctx, np.random.default_rng(streams[1]))
    agents = ctx.fraud.table()
    agents = agents.take(np.flatnonzero(agents["type"] == T["complaint"]))
    rng = np.random.default_rng(streams[2])
    ordinary_n = max(0, n - len(agents))
    free = np.flatnonzero(~ctx.claimed & ~pop.dormant)
    who = np.sort(rng.choice(free, ordinary_n))
    when = config.start_ms + rng.integers(0, days * DAY_MS, ordinary_n)
    ordinary = Background(ctx, rng).complaints(who, when, 0)
    table = EventTable.concat([agents, ordinary])
    texts = ctx.texts.values
    gang_ids = [g.id for g in ctx.gangs]
    pick = random.Random(seed)
    records, truth = [], {}
    cols = table.cols
    for i in range(len(table)):
        account = int(cols["account"][i])
        text = texts[int(cols["text"][i])]
        if names:
            name = pick.choice(SURNAMES) + pick.choice(GIVEN) + pick.choice(GIVEN)
            text = f"我是{name}，{text}" if pick.random() < 0.5 else f"{text}（{name}）"
        contact = int(cols["contact_phone"][i])
        refund = int(cols["refund_account"][i])
        event_id = f"c{i:08d}"
        records.append(
            Record(
                event_id=event_id,
                kind="complaint",
                account=f"acc-{account}",
                at_ms=int(cols["ts"][i]),
                registered_phone=f"+86{int(cols['phone'][i])}",
                device=f"dev-{int(cols['device'][i])}",
                ip=f"ip-{int(cols['ip'][i])}",
                channel=CHANNELS[int(cols["channel"][i])],
                text=text,
                contact_phone=f"+86{contact}" if contact >= 0 else None,
                refund_account=f"acc-{refund}" if refund >= 0 else None,
            )
        )
        gang = int(cols["gang"][i])
        truth[event_id] = gang_ids[gang] if gang >= 0 else None
    return records, truth


def baseline(records: list[Record], sample: int, bands: Bands) -> dict[str, float]:
    """Exact Jaccard on every pair of a sample (shingle sets in Python), and how many of the pairs at
    least 0.7 alike the LSH bands would have proposed."""
    rng = random.Random(1)
    chosen = rng.sample(records, min(sample, len(records)))
    norms = [normalise(r.text) for r in chosen]
    keys, offsets = shingle_table(norms)
    sets = [set(keys[offsets[i] : offsets[i + 1]].tolist()) for i in range(len(norms))]
    started = time.perf_counter()
    alike = []
    for i in range(len(sets)):
        a = sets[i]
        for j in range(i + 1, len(sets)):
            b = sets[j]
            if a and b and len(a & b) / len(a | b) >= 0.7:
                alike.append((i, j))
    seconds = time.perf_counter() - started
    pairs = len(sets) * (len(sets) - 1) / 2
    signatures = MinHasher(bands.num_perm).signatures(keys, offsets)
    bk = band_keys(signatures, bands)
    found = sum(1 for i, j in alike if (bk[i] == bk[j]).any())
    return {"seconds": seconds, "pairs": pairs, "alike": len(alike), "lsh_found": found}


def world_scores(seed: int, accounts: int, days: int) -> list[str]:
    intensity = {"proxy_rights_agent": 100.0, "loan_intermediary": 100.0}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_world(simulate(WorldConfig(accounts=accounts, days=days, seed=seed, intensity=intensity)), out)
        analyzer = ComplaintAnalyzer()
        assessments = analyzer.build(from_frame(read_events(out)))
        lines = []
        for s in evaluate(analyzer, assessments, world_truth(out)):
            name = "agent rings" if s.kind == "complaint" else "intermediary rings"
            lines.append(
                f"{name}: precision {s.precision:.2f} recall {s.recall:.2f}  ({s.gangs_found}/{s.gangs} gangs, "
                f"{s.gang_records} of {s.records} records; ordinary: review {100 * s.false_flag_rate:.2f} %, "
                f"verify {100 * s.verify_rate:.1f} %)"
            )
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-names", dest="names", action="store_false", help="texts exactly as simulated")
    parser.add_argument("--incremental", type=int, default=2_000, help="complaints matched one at a time")
    parser.add_argument("--sample", type=int, default=3_000, help="baseline: exact all-pairs sample size")
    parser.add_argument("--world-accounts", type=int, default=20_000)
    parser.add_argument("--world-days", type=int, default=30)
    parser.add_argument("--skip-worlds", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    records, truth = corpus(args.complaints, args.seed, args.names)
    records.sort(key=lambda r: r.at_ms)
    agents = sum(1 for r in records if truth[r.event_id] is not None)
    gangs = len({g for g in truth.values() if g})
    print(
        f"corpus: {len(records):,} complaints ({agents:,} by {gangs} simulated agents, {len(records) - agents:,} "
        f"ordinary), names in texts: {args.names}; built in {time.perf_counter() - started:.0f} s"
    )
    held = records[-args.incremental :] if args.incremental else []
    bulk_records = records[: len(records) - len(held)]
    gc.collect()
    before = rss_gib()
    started, cpu = time.perf_counter(), time.process_time()
    analyzer = ComplaintAnalyzer()
    assessments = analyzer.build(bulk_records)
    bulk_seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rings = analyzer.rings()
    print(
        f"bulk clustering: {len(bulk_records):,} complaints in {bulk_seconds:.0f} s ({bulk_seconds / 60:.1f} min, "
        f"target 10; {cpu:.0f} s of CPU, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), "
        f"peak memory {rss_gib():.1f} GiB (+{rss_gib() - before:.1f} GiB for the analyser); "
        f"{len(analyzer.text):,} distinct texts, {len(rings):,} rings"
    )
    from riskguard.complaints.evaluate import clusters

    found = clusters(analyzer)
    routes = {a.event_id: a.route for a in assessments}
    ids = [r.event_id for r in bulk_records]
    s = score("complaint", ids, truth, found, routes)
    print(f"agent rings: precision {s.precision:.2f} recall {s.recall:.2f}")
    print(
        f"  {s.gangs_found}/{s.gangs} agents found; complaints in rings: precision {s.record_precision:.3f} "
        f"recall {s.record_recall:.3f}"
    )
    counts = {
        route: sum(1 for e in ids if truth[e] is None and routes[e] == route) for route in (HANDLE, VERIFY, REVIEW)
    }
    ordinary = sum(counts.values())
    print(
        f"ordinary complaints: false flags (review as suspected agent) {100 * counts[REVIEW] / ordinary:.3f} %, "
        f"verify identity {100 * counts[VERIFY] / ordinary:.2f} %, "
        f"handled normally {100 * counts[HANDLE] / ordinary:.2f} %"
    )

    if held:
        started = time.perf_counter()
        before = rss_gib()
        analyzer.text._index()  # datasketch's LSH over every distinct text so far (built on first add)
        tune_gc()  # as ``riskguard serve`` does after start-up
        print(
            f"incremental index: datasketch MinHashLSH over {len(analyzer.text):,} texts built in "
            f"{time.perf_counter() - started:.0f} s, peak memory {rss_gib():.1f} GiB (+{rss_gib() - before:.1f})"
        )
        latencies, cpu_times = [], []
        for record in held:
            t0, c0 = time.perf_counter(), time.thread_time()
            analyzer.add(record)
            latencies.append(time.perf_counter() - t0)
            cpu_times.append(time.thread_time() - c0)
        ms, cpu_ms = np.asarray(latencies) * 1000, np.asarray(cpu_times) * 1000
        print(
            f"incremental match against {len(bulk_records):,} earlier complaints: p50 {np.percentile(ms, 50):.2f} ms "
            f"p99 {np.percentile(ms, 99):.2f} ms max {ms.max():.1f} ms over {len(held):,} new complaints "
            f"(target p99 5 ms); CPU time per match p50 {np.percentile(cpu_ms, 50):.2f} ms "
            f"p99 {np.percentile(cpu_ms, 99):.2f} ms (load average {os.getloadavg()[0]:.1f})"
        )
        # the brute-force twin: one new complaint against every earlier text, exactly
        norms = [normalise(r.text) for r in bulk_records[-20_000:]]
        keys, offsets = shingle_table(norms)
        sets = [set(keys[offsets[i] : offsets[i + 1]].tolist()) for i in range(len(norms))]
        probe = set(keys[offsets[0] : offsets[1]].tolist())
        t0 = time.perf_counter()
        for other in sets:
            len(probe & other) / len(probe | other)
        per_pair = (time.perf_counter() - t0) / len(sets)
        print(
            f"  baseline: exact scan of every earlier text, {per_pair * 1e6:.2f} µs a text → "
            f"{per_pair * len(bulk_records) * 1000:.0f} ms per new complaint at this size"
        )

    b = baseline(bulk_records, args.sample, analyzer.text.bands)
    whole = b["seconds"] / b["pairs"] * len(bulk_records) ** 2 / 2
    print(
        f"baseline: exact pairwise Jaccard on a {args.sample:,}-complaint sample: {b['pairs']:,.0f} pairs in "
        f"{b['seconds']:.1f} s ({b['seconds'] / b['pairs'] * 1e6:.2f} µs a pair) → all pairs of "
        f"{len(bulk_records):,} ≈ {whole / 86400:,.1f} days on one core; the LSH bands propose "
        f"{b['lsh_found']:,} of its {b['alike']:,} pairs ≥ 0.7 alike "
        f"({100 * b['lsh_found'] / max(1, b['alike']):.1f} %)"
    )
    del analyzer, assessments, records
    gc.collect()

    if not args.skip_worlds:
        for seed, note in ((7, "tuned on"), (2026, "held out")):
            started = time.perf_counter()
            lines = world_scores(seed, args.world_accounts, args.world_days)
            print(
                f"simulated world seed {seed} ({note}; {args.world_accounts:,} accounts, {args.world_days} days, "
                f"{time.perf_counter() - started:.0f} s):"
            )
            for line in lines:
                print("  " + line)


if __name__ == "__main__":
    main()
