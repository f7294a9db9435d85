"""A member node: any mix of the roles ``log`` (accepts entries, signs checkpoints, gathers
cosignatures), ``mirror`` (replicates the log from its upstream and verifies everything it receives),
``witness`` (cosigns consistent checkpoints, catches forks), ``tokens`` (the VOPRF token service) and
``gateway`` (feeds hits into this member's riskguard as published features and a list).

Every node also acts for its member: it files signed reports, retractions, appeals and confirmations,
and serves the keys of its reports' sealed details to other members.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
from sqlalchemy import Engine

from riskguard.consortium.client import NodeClient, PeerError
from riskguard.consortium.details import DetailKeys, seal, unseal
from riskguard.consortium.entries import (
    AppealDecided,
    AppealOpened,
    Confirmation,
    Entry,
    EntryError,
    Evidence,
    Genesis,
    Member,
    Membership,
    Report,
    Retraction,
    decode,
    encode,
    expiry,
    new_entry_id,
    sign_entry,
)
from riskguard.consortium.ledger import SqlLedger
from riskguard.consortium.note import Checkpoint, NoteError, SignedCheckpoint, Signer, Verifier, sign_note, split_note
from riskguard.consortium.proofs import ProofError, verify_inclusion
from riskguard.consortium.psi import PsiClient, PsiServer
from riskguard.consortium.state import LedgerState
from riskguard.consortium.tokens import TokenClient, TokenService
from riskguard.consortium.witness import ForkDetected, SizeMismatch, Witness
from riskguard.errors import ConfigError
from riskguard.store.db import migrate, open_engine

log = logging.getLogger("riskguard.consortium")
Role = Literal["log", "mirror", "witness", "tokens", "gateway"]
MAX_CLOCK_SKEW = timedelta(minutes=10)
PAGE = 1_000


class NotWitnessed(Exception):
    """A checkpoint without enough valid cosignatures from the roster's witnesses."""


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """What ``riskguard consortium node --config FILE`` reads (YAML); paths are relative to the file."""

    member: str
    key: str
    genesis: str
    roles: list[Role] = msgspec.field(default_factory=lambda: ["mirror", "witness"])
    database_url: str = "sqlite:///./var/consortium.db"
    host: str = "127.0.0.1"
    port: int = 8700
    upstream: str = ""
    peers: list[str] = msgspec.field(default_factory=list)
    log_key: str = ""
    token_seed: str = ""
    token_limit: int = 100_000
    token_window_s: int = 86_400
    sync_interval_s: float = 5.0
    checkpoint_interval_s: float = 1.0


def load_config(path: Path) -> NodeConfig:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        config = msgspec.convert(raw, NodeConfig)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    base = path.resolve().parent

    def rel(value: str) -> str:
        return str((base / value).resolve()) if value and not Path(value).is_absolute() else value

    return msgspec.structs.replace(
        config,
        key=rel(config.key),
        genesis=rel(config.genesis),
        log_key=rel(config.log_key),
        token_seed=rel(config.token_seed),
    )


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} at {path}: {exc.strerror}") from None


class Node:
    def __init__(
        self,
        *,
        signer: Signer,
        genesis: bytes,
        roles: list[str],
        database_url: str | None = None,
        engine: Engine | None = None,
        upstream: str = "",
        peers: list[str] | None = None,
        log_signer: Signer | None = None,
        token_seed: bytes | None = None,
        token_limit: int = 100_000,
        token_window_s: int = 86_400,
        guard: Any = None,
        checkpoint_interval_s: float = 0.0,
    ) -> None:
        unknown = set(roles) - {"log", "mirror", "witness", "tokens", "gateway"}
        if unknown:
            raise ConfigError(f"unknown node roles {sorted(unknown)}")
        if "log" in roles and "mirror" in roles:
            raise ConfigError("a node either runs the log or mirrors it")
        self.signer = signer
        self.member = signer.name
        self.roles = set(roles)
        self.upstream = upstream.rstrip("/")
        self.peers = [p.rstrip("/") for p in peers or []]
        self.checkpoint_interval_s = checkpoint_interval_s
        if engine is None:
            if guard is not None:
                engine = guard.engine
            else:
                engine = open_engine(database_url or "sqlite:///./var/consortium.db")
                migrate(engine)
        self.engine = engine
        self.genesis_bytes = genesis
        self.genesis_entry = decode(genesis)
        genesis_body = self.genesis_entry.typed()
        if not isinstance(genesis_body, Genesis):
            raise ConfigError("the genesis file does not hold a genesis entry")
        self.params: Genesis = genesis_body
        self.origin = genesis_body.origin
        self.log_key = Verifier.parse(genesis_body.log_key)
        self.ledger = SqlLedger(engine, self.origin, log_key=self.log_key)
        self._lock = threading.RLock()
        self.state = self._replay()
        self._pinned = LedgerState()
        self._pinned.apply(self.genesis_entry, genesis_body, 0)
        self.client = NodeClient(signer)
        self.log_signer = log_signer
        if "log" in self.roles:
            if log_signer is None or log_signer.verifier != self.log_key:
                raise ConfigError("the log role needs the log's private key named in the genesis")
            if self.ledger.size == 0:
                self._append(self.genesis_entry, genesis)
        elif "mirror" in self.roles and not self.upstream:
            raise ConfigError("a mirror needs the URL of its upstream log node")
        if self.ledger.size and self.ledger.leaves(0, 1)[0] != genesis:
            raise ConfigError("this database holds another consortium's log (its first entry is not our genesis)")
        self.witness = Witness(engine, signer, {self.origin: self.log_key}) if "witness" in self.roles else None
        self._witness_sizes: dict[str, int] = {}
        self.tokens_service: TokenService | None = None
        if "tokens" in self.roles:
            if token_seed is None:
                raise ConfigError("the tokens role needs the token service's key seed")
            self.tokens_service = TokenService(engine, token_seed, limit=token_limit, window_s=token_window_s)
            if self.tokens_service.public_key.hex() != genesis_body.token_key:
                raise ConfigError("the token seed does not match the token key in the genesis")
        self.token_client = TokenClient(bytes.fromhex(genesis_body.token_key), self._evaluate)
        self.details = DetailKeys(engine)
        self.psi = PsiServer()
        self._psi_version = -1
        self.gateway = None
        if "gateway" in self.roles:
            if guard is None:
                raise ConfigError("the gateway role feeds a riskguard instance; none was given")
            from riskguard.consortium.gateway import Gateway

            self.gateway = Gateway(guard, engine, self.token_client)
        latest = self.ledger.latest_checkpoint()
        signed_size = Checkpoint.parse(split_note(latest)[0]).size if latest else -1
        self._dirty = "log" in self.roles and signed_size < self.ledger.size  # entries not yet in a checkpoint

    # ------------------------------------------------------------------ state
    def _replay(self) -> LedgerState:
        """Governance state from the stored log (entries were verified when they arrived)."""
        state = LedgerState()
        for index, data in enumerate(self.ledger.iter_leaves()):
            entry = decode(data)
            state.apply(entry, entry.typed(), index)
        return state

    @property
    def roster(self) -> LedgerState:
        """The state whose roster decides who may call and who witnesses: the pinned genesis until the
        log's own copy of it has been replicated."""
        return self.state if self.state.genesis is not None else self._pinned

    def now(self) -> datetime:
        return datetime.now(UTC)

    def member_url(self, member: str) -> str:
        info = self.roster.members.get(member)
        if info is None or not info.url:
            raise ConfigError(f"the roster has no URL for {member!r}")
        return info.url.rstrip("/")

    @property
    def log_url(self) -> str:
        return self.upstream

    # ------------------------------------------------------------------ the log role
    def _append(self, entry: Entry, data: bytes) -> int:
        with self._lock:
            body = self.state.check(entry)
            index = self.ledger.append([(entry, data)])
            self.state.apply(entry, body, index)
            self._dirty = True
            return index

    def submit(self, data: bytes) -> dict[str, Any]:
        """Accepts an entry from a member (the log role): checked, appended, and — with no checkpoint
        interval — witnessed at once."""
        if "log" not in self.roles:
            raise ConfigError("this node does not run the log")
        entry = decode(data)
        if abs(entry.time - self.now()) > MAX_CLOCK_SKEW:
            raise EntryError("at: the entry's time is more than 10 minutes from the log's clock")
        index = self._append(entry, data)
        if self.checkpoint_interval_s <= 0:
            self.publish_checkpoint()
        return {"index": index, "id": entry.id, "size": self.ledger.size}

    def publish_checkpoint(self) -> SignedCheckpoint:
        """Signs a checkpoint of the current tree and gathers the witnesses' cosignatures."""
        assert self.log_signer is not None
        with self._lock:
            size = self.ledger.size
            text = Checkpoint(self.origin, size, self.ledger.root(size)).text()
            signed = SignedCheckpoint(Checkpoint.parse(text), sign_note(text, [self.log_signer]))
            self._dirty = False
        for member in self.roster.members.values():
            if "witness" not in member.roles:
                continue
            try:
                line = self._cosignature(member.id, signed)
            except (PeerError, ForkDetected, NoteError, ConfigError) as exc:
                log.warning("witness %s did not cosign size %d: %s", member.id, size, exc)
                continue
            signed = signed.with_cosignature(line)
        self.ledger.save_checkpoint(signed)
        return signed

    def _cosignature(self, witness: str, signed: SignedCheckpoint) -> str:
        size = signed.checkpoint.size
        for _ in range(2):
            known = self._witness_sizes.get(witness, 0)
            proof = self.ledger.consistency_proof(known, size) if known <= size else []
            try:
                if witness == self.member and self.witness is not None:
                    line = self.witness.add_checkpoint(signed.note, known, proof)
                else:
                    line = self.client.add_checkpoint(self.member_url(witness), signed.note, known, proof)
            except SizeMismatch as exc:
                self._witness_sizes[witness] = exc.known
                continue
            except PeerError as exc:
                if exc.status == 409 and isinstance(exc.body, dict) and "size" in exc.body:
                    self._witness_sizes[witness] = int(exc.body["size"])
                    continue
                raise
            self._witness_sizes[witness] = size
            return line
        raise PeerError(f"witness {witness} keeps disagreeing about its last size")

    # ------------------------------------------------------------------ checkpoints as a client sees them
    def accept(self, note: str) -> SignedCheckpoint:
        """A checkpoint signed by the log and cosigned by at least k of the roster's witnesses."""
        signed = SignedCheckpoint.open(note, self.log_key)
        if signed.checkpoint.origin != self.origin:
            raise NoteError(f"a checkpoint of another log ({signed.checkpoint.origin!r})")
        cosigners = signed.cosigners(self.roster.witnesses())
        if len(cosigners) < self.roster.threshold:
            raise NotWitnessed(
                f"checkpoint of size {signed.checkpoint.size} carries {len(cosigners)} valid cosignatures "
                f"({', '.join(sorted(cosigners)) or 'none'}); the consortium requires {self.roster.threshold}"
            )
        return signed

    def latest(self) -> str | None:
        return self.ledger.latest_checkpoint()

    # ------------------------------------------------------------------ the mirror role
    def sync(self) -> int:
        """Pulls new entries from the upstream log and verifies all of them: the checkpoint's signature
        and cosignatures, every entry's signature and governance rules, and that the entries hash to the
        signed root. Returns how many entries were added."""
        if "mirror" not in self.roles:
            return 0
        signed = self.accept(self.client.checkpoint(self.upstream))
        target = signed.checkpoint.size
        with self._lock:
            have = self.ledger.size
            if target < have:
                self._fork_seen(signed, "the log's checkpoint is smaller than the tree this mirror holds")
            if target == have:
                if self.ledger.root(have) != signed.checkpoint.root:
                    self._fork_seen(signed, f"the log signed another root for size {have}")
                self.ledger.save_checkpoint(signed)
                return 0
            fetched: list[tuple[Entry, bytes]] = []
            while have + len(fetched) < target:
                start = have + len(fetched)
                page = self.client.entries(self.upstream, start, min(start + PAGE, target))
                if not page:
                    raise PeerError(f"the log served no entries from {start}")
                fetched.extend((decode(data), data) for data in page)
            try:
                for offset, (entry, _) in enumerate(fetched):
                    self.state.admit(entry, have + offset)
                self.ledger.append(fetched, expect_root=signed.checkpoint.root)
            except (EntryError, ProofError):
                self.state = self._replay()
                raise
            self.ledger.save_checkpoint(signed)
        if self.witness is not None:
            self._observe(signed.note, None)
        return len(fetched)

    def _fork_seen(self, signed: SignedCheckpoint, reason: str) -> None:
        if self.witness is not None:
            self._observe(signed.note, None)
        raise ForkDetected(reason)

    def _observe(self, note: str, proof: list[bytes] | None) -> None:
        assert self.witness is not None
        self.witness.observe(note, proof)

    def gossip(self) -> list[str]:
        """Compares this node's view with each peer's checkpoint; returns the forks found."""
        if self.witness is None:
            return []
        found = []
        for peer in self.peers:
            try:
                note = self.client.checkpoint(peer)
                theirs = SignedCheckpoint.open(note, self.log_key)
                mine = self.witness.last(self.origin)
                proof = None
                if mine is not None and theirs.checkpoint.size > mine.checkpoint.size:
                    proof = self.client.consistency(peer, mine.checkpoint.size, theirs.checkpoint.size)
                elif mine is not None and theirs.checkpoint.size < mine.checkpoint.size <= self.ledger.size:
                    proof = self.ledger.consistency_proof(theirs.checkpoint.size, mine.checkpoint.size)
                self.witness.observe(note, proof)
            except ForkDetected as exc:
                found.append(f"{peer}: {exc}")
            except (PeerError, NoteError, ValueError) as exc:
                log.warning("gossip with %s failed: %s", peer, exc)
        return found

    # ------------------------------------------------------------------ tokens, PSI, gateway
    def _evaluate(self, blinded: list[bytes]) -> bytes:
        if self.tokens_service is not None:
            return self.tokens_service.evaluate(self.member, blinded)
        return self.client.evaluate(self.member_url(self.params.token_member), blinded)

    def psi_server(self) -> PsiServer:
        """The PSI server over the live reported tokens (re-encoded shard by shard as they change)."""
        self.psi.update(self.state.hits(self.now()).keys())
        return self.psi

    def psi_query(self, base: str, tokens: list[str]) -> list[str]:
        """Asks another node which of ``tokens`` are reported, without showing it the tokens."""
        client = PsiClient()
        _, setups = self.client.psi_setup(base)
        response = self.client.psi(base, client.request(tokens))
        return client.intersect(tokens, setups, response)

    def refresh_gateway(self) -> dict[str, int]:
        if self.gateway is None:
            return {}
        return self.gateway.refresh(self.state, self.now())

    def lookup(self, kind: str, values: list[str]) -> dict[str, Any]:
        """What the consortium says about some of this member's own identifiers (tokenised first)."""
        tokens = self.token_client.tokens(kind, values)
        hits = self.state.hits(self.now(), set(tokens))
        return {
            value: {"token": token, "reported": token in hits, **({"hit": hits[token]} if token in hits else {})}
            for value, token in zip(values, tokens, strict=True)
        }

    # ------------------------------------------------------------------ acting for the member
    def file(self, kind: str, body: msgspec.Struct, *, entry_id: str | None = None) -> dict[str, Any]:
        entry = sign_entry(self.signer, kind, body, entry_id=entry_id)
        data = encode(entry)
        if "log" in self.roles:
            return self.submit(data)
        return self.client.submit(self.log_url, data)

    def report(
        self,
        *,
        subject_kind: str,
        value: str,
        category: str,
        severity: int,
        legal_basis: str,
        evidence: bytes | None = None,
        evidence_sha256: str | None = None,
        reference: str = "",
        expires_in_days: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Files a report on one of this member's own identifiers: tokenised, evidence hashed (the
        package itself stays here), optional details sealed with a key kept here."""
        if (evidence is None) == (evidence_sha256 is None):
            raise EntryError("evidence: give the evidence package or its SHA-256, one of the two")
        digest = evidence_sha256 if evidence_sha256 is not None else hashlib.sha256(evidence or b"").hexdigest()
        token = self.token_client.token(subject_kind, value)
        now = self.now()
        entry_id = new_entry_id()
        sealed = None
        if details:
            sealed, key = seal(entry_id, details)
            self.details.put(entry_id, key)
        days = expires_in_days or self.params.default_expiry_days
        body = Report(
            subject=token,
            subject_kind=subject_kind,  # type: ignore[arg-type]
            category=category,  # type: ignore[arg-type]
            severity=severity,
            evidence=Evidence(hash=digest.lower(), held_by=self.member, reference=reference),
            legal_basis=legal_basis,
            expires_at=expiry(now, days),
            details=sealed,
        )
        try:
            return self.file("report", body, entry_id=entry_id)
        except Exception:
            if details:
                self.details.erase(entry_id)
            raise

    def retract(self, report: str, reason: str) -> dict[str, Any]:
        return self.file("retraction", Retraction(report=report, reason=reason))

    def open_appeal(self, report: str, grounds: str, note: str = "") -> dict[str, Any]:
        return self.file("appeal_opened", AppealOpened(report=report, grounds=grounds, note=note))  # type: ignore[arg-type]

    def decide_appeal(self, appeal: str, outcome: str, reason: str) -> dict[str, Any]:
        return self.file("appeal_decided", AppealDecided(appeal=appeal, outcome=outcome, reason=reason))  # type: ignore[arg-type]

    def confirm(self, report: str, note: str = "") -> dict[str, Any]:
        return self.file("confirmation", Confirmation(report=report, note=note))

    def change_membership(self, action: str, member: Member) -> dict[str, Any]:
        return self.file("membership", Membership(action=action, member=member))  # type: ignore[arg-type]

    def read_details(self, report_id: str) -> dict[str, Any]:
        """Opens a report's sealed details with the key its filer serves (or holds, if it is us)."""
        report = self.state.reports.get(report_id)
        if report is None or report.report.details is None:
            raise EntryError(f"report {report_id} has no sealed details")
        if report.member == self.member:
            key = self.details.get(report_id)
        else:
            key = self.client.detail_key(self.member_url(report.member), report_id)
        return unseal(report_id, report.report.details, key)

    # ------------------------------------------------------------------ proofs for one entry
    def prove(self, entry_id: str) -> dict[str, Any]:
        """An entry with its inclusion proof against the newest accepted checkpoint, verified here."""
        index = self.ledger.index_of(entry_id)
        note = self.latest()
        if index is None or note is None:
            raise EntryError(f"entry {entry_id} is not on this node's copy of the log")
        signed = SignedCheckpoint.open(note, self.log_key)
        size = signed.checkpoint.size
        if index >= size:
            raise EntryError(f"entry {entry_id} is not yet in a signed checkpoint")
        data = self.ledger.leaves(index, index + 1)[0]
        path = self.ledger.inclusion_proof(index, size)
        from riskguard.consortium.merkle import leaf_hash

        verify_inclusion(leaf_hash(data), index, size, path, signed.checkpoint.root)
        return {"index": index, "size": size, "entry": data, "proof": path, "checkpoint": note}

    # ------------------------------------------------------------------ background work
    def tick(self) -> None:
        """One round of background work (the CLI runs it in a loop): checkpoint, sync, gossip, gateway."""
        if "log" in self.roles and self._dirty:
            self.publish_checkpoint()
        if "mirror" in self.roles:
            self.sync()
        if self.peers:
            for fork in self.gossip():
                log.error("FORK: %s", fork)
        if self.gateway is not None:
            self.refresh_gateway()

    def run_background(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.wait(interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("consortium background round failed; retrying next round")

    def close(self) -> None:
        self.client.close()


def node_from_config(config: NodeConfig, guard: Any = None) -> Node:
    signer = Signer.parse(read_text(config.key, "member key"))
    if signer.name != config.member:
        raise ConfigError(f"the key file holds the key of {signer.name!r}, not {config.member!r}")
    genesis = read_text(config.genesis, "genesis entry").encode()
    log_signer = Signer.parse(read_text(config.log_key, "log key")) if config.log_key else None
    seed = bytes.fromhex(read_text(config.token_seed, "token seed")) if config.token_seed else None
    return Node(
        signer=signer,
        genesis=genesis,
        roles=list(config.roles),
        database_url=config.database_url,
        upstream=config.upstream,
        peers=config.peers,
        log_signer=log_signer,
        token_seed=seed,
        token_limit=config.token_limit,
        token_window_s=config.token_window_s,
        guard=guard,
        checkpoint_interval_s=config.checkpoint_interval_s,
    )
