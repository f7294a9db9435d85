"""The model registry's table, on riskguard's schema metadata (migration 0008_model_versions).

One row per trained model version: where its files are, their checksum, the model card (JSON) and who
registered it. Versions are immutable; a strategy names a model and, optionally, a version.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, Text, UniqueConstraint

from riskguard.store.tables import UTCDateTime, metadata

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", Text, nullable=False),  # the version's directory (model.txt, trees.npz, card.json, card.md)
    Column("checksum", String(64), nullable=False),  # SHA-256 of model.txt
    Column("card", Text, nullable=False),  # the model card, JSON
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)
