"""``riskguard consortium``: keys, the genesis, a member node, and the member's own operations
(an adapter only: the work is in ``node`` and ``http``)."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.errors import ConfigError, RiskguardError

app = typer.Typer(
    help="The consortium risk ledger: keys, genesis, member nodes, reports and appeals.", no_args_is_help=True
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _run(fn: Any) -> Any:
    from riskguard.consortium.client import PeerError
    from riskguard.consortium.entries import EntryError
    from riskguard.consortium.ledger import TamperedLog
    from riskguard.consortium.note import NoteError
    from riskguard.consortium.privacy import PrivacyError
    from riskguard.consortium.proofs import ProofError

    try:
        return fn()
    except (RiskguardError, PeerError, EntryError, NoteError, PrivacyError, ProofError, TamperedLog) as exc:
        _fail(str(exc))


def _write(path: Path, text: str, *, secret: bool = False) -> None:
    if path.exists():
        _fail(f"{path} exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    if secret:
        path.chmod(0o600)


@app.command()
def keygen(
    name: Annotated[str, typer.Argument(help="Member id (or the log's origin, for a log key)")],
    out: Annotated[Path, typer.Option(help="Private key file to write (mode 600)")],
) -> None:
    """Create an Ed25519 key; prints the public verifier key that goes into the roster."""
    from riskguard.consortium.note import Signer

    signer = _run(lambda: Signer.generate(name))
    _write(out, str(signer), secret=True)
    typer.echo(str(signer.verifier))


@app.command("token-seed")
def token_seed(out: Annotated[Path, typer.Option(help="Seed file to write (mode 600)")]) -> None:
    """Create the token service's VOPRF key seed; prints its public key for the genesis."""
    from voprf import ristretto

    seed = secrets.token_bytes(32)
    _write(out, seed.hex(), secret=True)
    typer.echo(ristretto.Evaluator(seed).public_key.serialize().hex())


@app.command()
def genesis(
    roster: Annotated[Path, typer.Argument(help="YAML: origin, log_key, token_key, token_member, members, ...")],
    key: Annotated[Path, typer.Option(help="Private key of the founding admin who files it")],
    out: Annotated[Path, typer.Option(help="Signed genesis entry to write (every node pins it)")],
) -> None:
    """Sign the consortium's genesis entry (founding roster and parameters)."""
    import msgspec
    import yaml

    from riskguard.consortium.entries import Genesis, encode, sign_entry
    from riskguard.consortium.node import read_text
    from riskguard.consortium.note import Signer

    def make() -> bytes:
        try:
            body = msgspec.convert(yaml.safe_load(roster.read_text(encoding="utf-8")), Genesis)
        except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
            raise ConfigError(f"{roster}: {exc}") from None
        return encode(sign_entry(Signer.parse(read_text(str(key), "key")), "genesis", body))

    data = _run(make)
    _write(out, data.decode())
    typer.echo(f"genesis written to {out}")


@app.command()
def node(
    config: Annotated[Path, typer.Option(help="Node configuration (YAML): member, key, genesis, roles, ...")],
    host: Annotated[str | None, typer.Option(help="Address to listen on (overrides the file)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (overrides the file)")] = None,
) -> None:
    """Run a member node: log or mirror, witness, token service, gateway (docs/consortium.md)."""
    import uvicorn

    from riskguard.consortium.http import create_node_app
    from riskguard.consortium.node import load_config, node_from_config
    from riskguard.logs import configure

    settings_config = _run(lambda: load_config(config))
    configure("INFO")
    guard = None
    if "gateway" in settings_config.roles:
        from riskguard.app import RiskGuard
        from riskguard.config import Settings

        guard = _run(
            lambda: RiskGuard(
                Settings.from_env(database_url=settings_config.database_url), background=False, warm_features=False
            )
        )
    member_node = _run(lambda: node_from_config(settings_config, guard))
    stop = threading.Event()
    interval = min(settings_config.sync_interval_s, settings_config.checkpoint_interval_s or 60.0)
    worker = threading.Thread(target=member_node.run_background, args=(stop, max(interval, 0.05)), daemon=True)
    worker.start()
    bind_host, bind_port = host or settings_config.host, port or settings_config.port
    typer.echo(
        f"consortium node {member_node.member} ({', '.join(sorted(member_node.roles))}) of {member_node.origin} "
        f"on http://{bind_host}:{bind_port}; log size {member_node.ledger.size}",
        err=True,
    )
    try:
        uvicorn.run(create_node_app(member_node), host=bind_host, port=bind_port, log_level="warning", access_log=False)
    finally:
        stop.set()
        worker.join(5)
        member_node.close()
        if guard is not None:
            guard.close()


def _own(config: Path, method: str, path: str, payload: Any = None) -> Any:
    """Calls this member's own node, signing with the member key named in the node's configuration."""
    from riskguard.consortium.client import NodeClient
    from riskguard.consortium.node import load_config, read_text
    from riskguard.consortium.note import Signer

    settings = _run(lambda: load_config(config))
    client = NodeClient(_run(lambda: Signer.parse(read_text(settings.key, "member key"))))
    try:
        return _run(lambda: client.call(method, f"http://{settings.host}:{settings.port}", path, payload))
    finally:
        client.close()


def _print(data: Any) -> None:
    typer.echo(data if isinstance(data, str) else json.dumps(data, indent=2, ensure_ascii=False, default=str))


ConfigOption = Annotated[Path, typer.Option("--config", help="This member's node configuration (YAML)")]


@app.command()
def report(
    config: ConfigOption,
    subject_kind: Annotated[str, typer.Option(help="account, phone, card, device or payee")],
    value: Annotated[str, typer.Option(help="The identifier (tokenised on this member's node; never shared)")],
    category: Annotated[str, typer.Option(help="mule, telecom-fraud, proxy-agent, account-takeover, ...")],
    severity: Annotated[int, typer.Option(min=1, max=5, help="1 (low) to 5 (critical)")],
    evidence: Annotated[Path, typer.Option(help="The evidence package (hashed; it stays here)")],
    legal_basis: Annotated[str, typer.Option(help="The legal basis for sharing (no identifiers)")],
    reference: Annotated[str, typer.Option(help="Your own case reference (no identifiers)")] = "",
    expires_in_days: Annotated[int | None, typer.Option(help="Default: the consortium's default expiry")] = None,
) -> None:
    """File a report through this member's node."""
    import hashlib

    try:
        digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
    except OSError as exc:
        _fail(f"cannot read {evidence}: {exc.strerror}")
    payload = {
        "subject_kind": subject_kind,
        "value": value,
        "category": category,
        "severity": severity,
        "evidence_sha256": digest,
        "legal_basis": legal_basis,
        "reference": reference,
        "expires_in_days": expires_in_days,
    }
    _print(_own(config, "POST", "/consortium/v1/own/reports", payload))


@app.command()
def retract(
    config: ConfigOption,
    report_id: Annotated[str, typer.Argument(help="The report's entry id")],
    reason: Annotated[str, typer.Option(help="Why (no identifiers)")],
) -> None:
    """Retract one of this member's reports."""
    _print(_own(config, "POST", "/consortium/v1/own/retractions", {"report": report_id, "reason": reason}))


@app.command()
def appeal(
    config: ConfigOption,
    report_id: Annotated[str, typer.Argument(help="The report appealed against")],
    grounds: Annotated[str, typer.Option(help="mistaken_identity, victim_not_mule, account_resolved or other")],
    note: Annotated[str, typer.Option(help="Short note (no identifiers)")] = "",
) -> None:
    """Open an appeal for a person this member serves; the filer must answer before the deadline."""
    payload = {"report": report_id, "grounds": grounds, "note": note}
    _print(_own(config, "POST", "/consortium/v1/own/appeals", payload))


@app.command()
def decide(
    config: ConfigOption,
    appeal_id: Annotated[str, typer.Argument(help="The appeal's entry id")],
    outcome: Annotated[str, typer.Option(help="upheld or overturned")],
    reason: Annotated[str, typer.Option(help="Why (no identifiers)")],
) -> None:
    """Decide an appeal on one of this member's reports (any admin, once its deadline passed)."""
    payload = {"outcome": outcome, "reason": reason}
    _print(_own(config, "POST", f"/consortium/v1/own/appeals/{appeal_id}/decision", payload))


@app.command()
def watch(
    config: ConfigOption,
    kind: Annotated[str, typer.Option(help="account, phone, card, device or payee")],
    values_file: Annotated[Path, typer.Argument(help="A file with one identifier per line")],
) -> None:
    """Watch this member's own identifiers (tokenised; hits feed features and the consortium list)."""
    try:
        values = [line.strip() for line in values_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        _fail(f"cannot read {values_file}: {exc.strerror}")
    _print(_own(config, "POST", "/consortium/v1/own/watch", {"kind": kind, "values": values}))


@app.command()
def checkpoint(config: ConfigOption) -> None:
    """Print the newest witnessed checkpoint of this member's node."""
    _print(_own(config, "GET", "/consortium/v1/checkpoint"))


@app.command()
def contributions(config: ConfigOption) -> None:
    """Reports filed, live, withdrawn and matched, per member."""
    _print(_own(config, "GET", "/consortium/v1/contributions"))


@app.command()
def verify(config: ConfigOption) -> None:
    """Re-verify this node's whole copy of the log: every entry's signature and rules, and the root."""
    from riskguard.consortium.audit import audit_log
    from riskguard.consortium.node import load_config

    settings = _run(lambda: load_config(config))
    _print(_run(lambda: audit_log(settings)))


@app.command("check-strategy")
def check_strategy(path: Annotated[Path, typer.Argument(help="A strategy YAML file")]) -> None:
    """Check that a strategy uses consortium hits as signals, never as the only ground for a block."""
    from riskguard.config import Settings
    from riskguard.consortium.signals import violations
    from riskguard.decision.warnings import WarningCatalogue
    from riskguard.rules.strategy import compile_strategy

    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    settings = _run(Settings.from_env)
    keys = _run(lambda: WarningCatalogue.from_file(settings.warnings_file).keys())
    problems = violations(_run(lambda: compile_strategy(source, warning_keys=keys)))
    for problem in problems:
        typer.echo(f"violation: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: consortium hits are signals only")
