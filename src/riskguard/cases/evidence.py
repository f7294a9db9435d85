"""Evidence packages: a case's entities, timeline, decisions with reasons, ring graph, fund-flow paths and
analyst notes as ``evidence.json``, the same as a printable ``report.html``, and ``manifest.json`` — the
SHA-256 and size of every file and a package digest — so the receiving authority can check that the package
is complete and unaltered (``verify``, ``riskguard cases verify PACKAGE``).

A package is a zip file (default) or a directory with the same three files at its top. The package digest
is the SHA-256 of the manifest's canonical file list (``path  sha256  size`` lines, sorted by path); it is
written to the case's activity and the audit log when the package is made, so whoever receives it can
confirm with the platform that the manifest itself is the one issued. Hashing is by hand (hashlib) because
the format is three files; no packaging library is needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from riskguard.cases.report import render_html
from riskguard.store.tables import utcnow

FORMAT = "riskguard-evidence/1"
MANIFEST = "manifest.json"
REQUIRED = ("evidence.json", "report.html")
SECTIONS = ("case", "entities", "timeline", "decisions", "ring_graph", "fund_flows", "notes", "actions", "alerts")
_STAMP = (2000, 1, 1, 0, 0, 0)  # fixed zip entry times: the same contents make the same bytes


def _digest(files: list[dict[str, Any]]) -> str:
    lines = "".join(f"{f['path']}  {f['sha256']}  {f['size']}\n" for f in sorted(files, key=lambda f: f["path"]))
    return hashlib.sha256(lines.encode()).hexdigest()


def evidence_document(view: dict[str, Any], *, actor: str) -> dict[str, Any]:
    case_fields = (
        "id", "title", "status", "resolution", "assignee", "priority", "due_at", "breached",
        "created_at", "created_by", "closed_at", "trace_id",
    )  # fmt: skip
    return {
        "format": FORMAT,
        "exported_at": utcnow().isoformat(),
        "exported_by": actor,
        "masked": view["masked"],
        "case": {k: view.get(k) for k in case_fields},
        "entities": [{k: e[k] for k in ("kind", "value", "lists")} for e in view["entities"]],
        "alerts": view["alerts"],
        "timeline": view["timeline"],
        "decisions": view["decisions"],
        "ring_graph": view["ring_graph"],
        "fund_flows": view["fund_flows"],
        "notes": view["notes"],
        "actions": view["actions"],
        "freezes": view["freezes"],
    }


def build_files(view: dict[str, Any], *, actor: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The package's files (name → bytes, manifest included) and the manifest."""
    document = evidence_document(view, actor=actor)
    files = {
        "evidence.json": json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode(),
        "report.html": render_html(document).encode(),
    }
    listed = [
        {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in sorted(files.items())
    ]
    manifest = {
        "format": FORMAT,
        "case_id": view["id"],
        "created_at": document["exported_at"],
        "created_by": actor,
        "masked": view["masked"],
        "files": listed,
        "package_digest": _digest(listed),
    }
    files[MANIFEST] = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode()
    return files, manifest


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def write_package(view: dict[str, Any], out: Path, *, actor: str, as_zip: bool = True) -> dict[str, Any]:
    """Writes the package to ``out`` (a zip file, or a directory)."""
    files, manifest = build_files(view, actor=actor)
    if as_zip:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_zip(files))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (out / name).write_bytes(data)
    return {**manifest, "path": str(out)}


def package_bytes(view: dict[str, Any], *, actor: str) -> tuple[bytes, dict[str, Any]]:
    """The zip package in memory (for HTTP downloads) and its manifest."""
    files, manifest = build_files(view, actor=actor)
    return _zip(files), manifest


def _read(package: Path) -> dict[str, bytes]:
    if package.is_dir():
        return {p.relative_to(package).as_posix(): p.read_bytes() for p in sorted(package.rglob("*")) if p.is_file()}
    with zipfile.ZipFile(package) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def verify(package: Path | bytes, *, expected_digest: str | None = None) -> dict[str, Any]:
    """Checks a package (zip file, zip bytes or directory): the manifest lists every file, each file's
    SHA-256 and size match, nothing is missing or added, the package digest matches the file list (and
    ``expected_digest``, when the platform's record of it is given), and evidence.json has every section.
    Returns ``{"ok", "problems": [...], "files", "package_digest", "case_id"}``; never raises on bad input."""
    problems: list[str] = []
    try:
        if isinstance(package, bytes):
            with zipfile.ZipFile(io.BytesIO(package)) as archive:
                files = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
        else:
            files = _read(package)
    except (OSError, zipfile.BadZipFile) as exc:
        return {
            "ok": False,
            "problems": [f"cannot read the package: {exc}"],
            "files": 0,
            "package_digest": None,
            "case_id": None,
        }
    raw = files.pop(MANIFEST, None)
    if raw is None:
        return {
            "ok": False,
            "problems": ["manifest.json is missing"],
            "files": len(files),
            "package_digest": None,
            "case_id": None,
        }
    try:
        manifest = json.loads(raw)
        listed = {f["path"]: f for f in manifest["files"]}
        digest = manifest["package_digest"]
    except (ValueError, KeyError, TypeError):
        return {
            "ok": False,
            "problems": ["manifest.json is not a valid manifest"],
            "files": len(files),
            "package_digest": None,
            "case_id": None,
        }
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest format {manifest.get('format')!r} is not {FORMAT}")
    for name in REQUIRED:
        if name not in listed:
            problems.append(f"{name} is not listed in the manifest")
    for name, entry in sorted(listed.items()):
        data = files.get(name)
        if data is None:
            problems.append(f"{name} is listed but missing")
            continue
        if len(data) != entry.get("size"):
            problems.append(f"{name}: size {len(data)} differs from the manifest's {entry.get('size')}")
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 differs from the manifest (altered)")
    for name in sorted(set(files) - set(listed)):
        problems.append(f"{name} is in the package but not in the manifest")
    if _digest(list(listed.values())) != digest:
        problems.append("the package digest does not match the manifest's file list")
    if expected_digest is not None and expected_digest != digest:
        problems.append("the package digest differs from the one the platform recorded")
    if "evidence.json" in files and not any("evidence.json" in p for p in problems):
        try:
            document = json.loads(files["evidence.json"])
            missing = [s for s in SECTIONS if s not in document]
            if missing:
                problems.append(f"evidence.json lacks {', '.join(missing)}")
        except ValueError:
            problems.append("evidence.json is not JSON")
    return {
        "ok": not problems,
        "problems": problems,
        "files": len(listed),
        "package_digest": digest,
        "case_id": manifest.get("case_id"),
    }
