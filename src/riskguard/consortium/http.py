"""The member node's HTTP API (a FastAPI app of its own; adapters only — the work is in ``node``).

Member-to-member endpoints take a request signed with a roster member's key (see ``client``); the
``/own/`` endpoints take requests signed with this node's own member key (its operators and its
decision service), since they carry the member's own raw identifiers, which never leave it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from riskguard.api.fastpath import error_response
from riskguard.consortium.client import MAX_SKEW_S, b64, request_message, unb64
from riskguard.consortium.details import DetailsErased
from riskguard.consortium.entries import EntryError, Member
from riskguard.consortium.ledger import TamperedLog
from riskguard.consortium.node import Node, NotWitnessed
from riskguard.consortium.note import NoteError
from riskguard.consortium.privacy import PrivacyError
from riskguard.consortium.proofs import ProofError
from riskguard.consortium.psi import PsiError
from riskguard.consortium.tokens import RateLimited, TokenError
from riskguard.consortium.witness import ForkDetected, SizeMismatch
from riskguard.errors import Forbidden, NotFound, RiskguardError, Unauthorized, ValidationFailed

MAX_BODY = 4 * 1024 * 1024


def _json(content: Any, status: int = 200) -> Response:
    import msgspec

    return Response(msgspec.json.encode(content), status_code=status, media_type="application/json")


def _error(code: str, message: str, status: int, **extra: Any) -> Response:
    return _json({"error": code, "message": message, **extra}, status)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["body", field], "type": "value_error", "msg": message}])


def create_node_app(node: Node) -> FastAPI:
    app = FastAPI(title="riskguard consortium node", docs_url="/docs", redoc_url=None)

    @app.exception_handler(RiskguardError)
    async def on_error(_request: Request, exc: RiskguardError) -> Response:
        status, body, _ = error_response(exc)
        return Response(body, status_code=status, media_type="application/json")

    async def authenticate(request: Request, *, own: bool = False) -> tuple[str, bytes]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise ValidationFailed([{"loc": ["body"], "type": "value_error", "msg": "request body too large"}])
        member = request.headers.get("x-consortium-member", "")
        stamp = request.headers.get("x-consortium-time", "")
        signature = request.headers.get("x-consortium-signature", "")
        if not (member and stamp.isdigit() and signature):
            raise Unauthorized("sign the request with a member key (X-Consortium-Member, -Time, -Signature)")
        if abs(int(stamp) - time.time()) > MAX_SKEW_S:
            raise Unauthorized("X-Consortium-Time is more than 5 minutes from this node's clock")
        key = node.roster.keys.get(member) if member != node.member else node.signer.verifier
        if key is None:
            raise Unauthorized(f"{member!r} is not a member of the consortium")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            raw = base64.b64decode(signature, validate=True)
        except ValueError:
            raise Unauthorized("X-Consortium-Signature is not base64") from None
        if not key.verify(request_message(request.method, path, int(stamp), body), raw):
            raise Unauthorized("the request signature does not verify")
        if own and member != node.member:
            raise Forbidden("only this node's own member may use /own/ endpoints")
        return member, body

    async def work(fn: Callable[..., Any], *args: Any) -> Any:
        """Runs blocking work off the event loop and maps the consortium's errors to HTTP answers."""
        try:
            return await run_in_threadpool(fn, *args)
        except (EntryError, PrivacyError, TokenError, PsiError, ProofError) as exc:
            return _error("rejected", str(exc), 422)
        except NoteError as exc:
            return _error("bad_signature", str(exc), 403)
        except NotWitnessed as exc:
            return _error("not_witnessed", str(exc), 409)
        except SizeMismatch as exc:
            return _error("size_mismatch", f"this witness last saw size {exc.known}", 409, size=exc.known)
        except ForkDetected as exc:
            return _error("fork", str(exc), 409, fork=True)
        except RateLimited as exc:
            return _error("rate_limited", str(exc), 429)
        except DetailsErased as exc:
            return _error("erased", str(exc), 410)
        except TamperedLog as exc:
            return _error("tampered", str(exc), 500)

    def need(role: str) -> None:
        if role not in node.roles:
            raise NotFound(f"this node does not run the {role} role")

    def number(request: Request, name: str) -> int:
        value = request.query_params.get(name, "")
        if not value.isdigit():
            raise ValidationFailed([{"loc": ["query", name], "type": "value_error", "msg": "a whole number"}])
        return int(value)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok", "member": node.member, "roles": sorted(node.roles), "size": node.ledger.size})

    # ------------------------------------------------------------------ the log
    @app.get("/consortium/v1/checkpoint")
    async def checkpoint(request: Request) -> Response:
        await authenticate(request)
        note = node.latest()
        if note is None:
            raise NotFound("no checkpoint yet")
        return Response(note, media_type="text/plain; charset=utf-8")

    @app.get("/consortium/v1/entries")
    async def entries(request: Request) -> Response:
        await authenticate(request)
        start, end = number(request, "start"), number(request, "end")
        end = min(end, start + 1000)
        leaves = await run_in_threadpool(node.ledger.leaves, start, end)
        return _json({"start": start, "entries": [b64(leaf) for leaf in leaves]})

    @app.get("/consortium/v1/proof/inclusion")
    async def inclusion(request: Request) -> Response:
        await authenticate(request)
        index, size = number(request, "index"), number(request, "size")
        try:
            proof = node.ledger.inclusion_proof(index, size)
        except ValueError as exc:
            raise _invalid("index", str(exc)) from None
        return _json({"index": index, "size": size, "proof": [b64(p) for p in proof]})

    @app.get("/consortium/v1/proof/consistency")
    async def consistency(request: Request) -> Response:
        await authenticate(request)
        first, second = number(request, "first"), number(request, "second")
        try:
            proof = node.ledger.consistency_proof(first, second)
        except ValueError as exc:
            raise _invalid("second", str(exc)) from None
        return _json({"first": first, "second": second, "proof": [b64(p) for p in proof]})

    @app.post("/consortium/v1/entries")
    async def submit(request: Request) -> Response:
        _, body = await authenticate(request)
        need("log")
        result = await work(node.submit, body)
        return result if isinstance(result, Response) else _json(result, 201)

    # ------------------------------------------------------------------ witness, tokens, PSI, details
    @app.post("/consortium/v1/witness/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        _, body = await authenticate(request)
        need("witness")
        payload = _payload(body)
        assert node.witness is not None
        try:
            proof = [unb64(p) for p in payload.get("proof", [])]
            note, old_size = str(payload["note"]), int(payload["old_size"])
        except (KeyError, ValueError, TypeError):
            raise _invalid("note", "give note, old_size and proof (base64 hashes)") from None
        result = await work(node.witness.add_checkpoint, note, old_size, proof)
        return result if isinstance(result, Response) else _json({"cosignature": result})

    @app.post("/consortium/v1/tokens")
    async def tokens(request: Request) -> Response:
        member, body = await authenticate(request)
        need("tokens")
        assert node.tokens_service is not None
        try:
            blinded = [unb64(b) for b in _payload(body)["blinded"]]
        except (KeyError, ValueError, TypeError):
            raise _invalid("blinded", "a list of base64 blinded elements") from None
        result = await work(node.tokens_service.evaluate, member, blinded)
        return result if isinstance(result, Response) else _json({"evaluation": b64(result)})

    @app.get("/consortium/v1/psi/setup")
    async def psi_setup(request: Request) -> Response:
        await authenticate(request)
        version, shards = await run_in_threadpool(lambda: node.psi_server().setups())
        return _json({"version": version, "shards": [b64(s) for s in shards]})

    @app.post("/consortium/v1/psi")
    async def psi(request: Request) -> Response:
        _, body = await authenticate(request)
        try:
            blob = unb64(_payload(body)["request"])
        except (KeyError, ValueError, TypeError):
            raise _invalid("request", "a base64 PSI request") from None
        result = await work(node.psi_server().process, blob)
        return result if isinstance(result, Response) else _json({"response": b64(result)})

    @app.get("/consortium/v1/details/{entry_id}/key")
    async def detail_key(request: Request, entry_id: str) -> Response:
        member, _ = await authenticate(request)
        report = node.state.reports.get(entry_id)
        if report is None or report.member != node.member:
            raise NotFound(f"no report {entry_id} filed by {node.member}")
        result = await work(node.details.get, entry_id)
        if isinstance(result, Response):
            return result
        node_audit(node, member, "consortium.details.key", entry_id)
        return _json({"key": b64(result)})

    # ------------------------------------------------------------------ reading the shared record
    @app.get("/consortium/v1/reports/{entry_id}")
    async def report(request: Request, entry_id: str) -> Response:
        await authenticate(request)
        found = node.state.reports.get(entry_id)
        if found is None:
            raise NotFound(f"no report {entry_id}")
        return _json(node.state.describe(found, node.now()))

    @app.get("/consortium/v1/members")
    async def members(request: Request) -> Response:
        await authenticate(request)
        return _json({"members": list(node.roster.members.values()), "witness_threshold": node.roster.threshold})

    @app.get("/consortium/v1/contributions")
    async def contributions(request: Request) -> Response:
        await authenticate(request)
        return _json(node.state.contributions(node.now()))

    @app.get("/consortium/v1/forks")
    async def forks(request: Request) -> Response:
        await authenticate(request)
        return _json({"forks": node.witness.forks() if node.witness else []})

    # ------------------------------------------------------------------ this member's own operations
    @app.post("/consortium/v1/own/reports")
    async def own_report(request: Request) -> Response:
        _, body = await authenticate(request, own=True)
        p = _payload(body)
        try:
            kwargs = {
                "subject_kind": p["subject_kind"],
                "value": p["value"],
                "category": p["category"],
                "severity": int(p["severity"]),
                "evidence": p["evidence"].encode() if "evidence" in p else None,
                "evidence_sha256": p.get("evidence_sha256"),
                "legal_basis": p["legal_basis"],
                "reference": p.get("reference", ""),
                "expires_in_days": p.get("expires_in_days"),
                "details": p.get("details"),
            }
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise _invalid(
                str(exc).strip("'"), "subject_kind, value, category, severity, evidence or evidence_sha256, legal_basis"
            ) from None
        result = await work(lambda: node.report(**kwargs))
        return result if isinstance(result, Response) else _json(result, 201)

    @app.post("/consortium/v1/own/retractions")
    async def own_retract(request: Request) -> Response:
        _, body = await authenticate(request, own=True)
        p = _payload(body)
        result = await work(node.retract, str(p.get("report", "")), str(p.get("reason", "")))
        return result if isinstance(result, Response) else _json(result, 201)

    @app.post("/consortium/v1/own/appeals")
    async def own_appeal(request: Request) -> Response:
        _, body = await authenticate(request, own=True)
        p = _payload(body)
        result = await work(
            node.open_appeal, str(p.get("report", "")), str(p.get("grounds", "")), str(p.get("note", ""))
        )
        return result if isinstance(result, Response) else _json(result, 201)

    @app.post("/consortium/v1/own/appeals/{appeal_id}/decision")
    async def own_decide(request: Request, appeal_id: str) -> Response:
        _, body = await authenticate(request, own=True)
        p = _payload(body)
        result = await work(node.decide_appeal, appeal_id, str(p.get("outcome", "")), str(p.get("reason", "")))
        return result if isinstance(result, Response) else _json(result, 201)

    @app.post("/consortium/v1/own/members")
    async def own_member(request: Request) -> Response:
        _, body = await authenticate(request, own=True)
        p = _payload(body)
        try:
            member = Member(**p["member"])
        except (KeyError, TypeError) as exc:
            raise _invalid("member", f"id, name, key, roles (and url): {exc}") from None
        result = await work(node.change_membership, str(p.get("action", "")), member)
        return result if isinstance(result, Response) else _json(result, 201)

    @app.post("/consortium/v1/own/watch")
    async def own_watch(request: Request) -> Response:
        _, body = await authenticate(request, own=True)
        need("gateway")
        p = _payload(body)
        assert node.gateway is not None
        values = p.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _invalid("values", "a list of identifiers")
        result = await work(node.gateway.watch, str(p.get("kind", "")), values)
        return result if isinstance(result, Response) else _json({"added": result})

    @app.post("/consortium/v1/own/lookup")
    async def own_lookup(request: Request) -> Response:
        _, body = await authenticate(request, own=True)
        p = _payload(body)
        values = p.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _invalid("values", "a list of identifiers")
        result = await work(node.lookup, str(p.get("kind", "")), values)
        return result if isinstance(result, Response) else _json(result)

    @app.post("/consortium/v1/own/details/{entry_id}/erase")
    async def own_erase(request: Request, entry_id: str) -> Response:
        await authenticate(request, own=True)
        erased = await run_in_threadpool(node.details.erase, entry_id)
        return _json({"erased": erased})

    return app


def _payload(body: bytes) -> dict[str, Any]:
    import json

    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ValidationFailed([{"loc": ["body"], "type": "value_error", "msg": "not JSON"}]) from None
    if not isinstance(data, dict):
        raise ValidationFailed([{"loc": ["body"], "type": "value_error", "msg": "a JSON object"}])
    return data


def node_audit(node: Node, member: str, action: str, target: str) -> None:
    from riskguard.store.audit import AuditRepository

    AuditRepository(node.engine).record(f"member:{member}", action, target, {})
