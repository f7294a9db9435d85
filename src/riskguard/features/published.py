"""Published features in memory: what batch jobs (graph mining, mule scoring, the consortium ledger)
computed per entity, read by decisions as ``aggregate: published`` features.

The store (store/published.py) is the source of truth; each process keeps every source in a dict and
reloads a source when its version in the store moves (after a publish here, or by the refresh poll when
another process published).
"""

from __future__ import annotations

from riskguard.store.published import PublishedRepository


class PublishedIndex:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}
        self.versions: dict[str, int] = {}

    def refresh(self, repository: PublishedRepository) -> list[str]:
        """Reloads the sources whose version changed; returns their names."""
        changed = []
        for source, version in repository.versions().items():
            if self.versions.get(source) != version:
                self.values[source] = repository.load(source)
                self.versions[source] = version
                changed.append(source)
        return changed

    def get(self, source: str, entity: str) -> float | None:
        values = self.values.get(source)
        return None if values is None else values.get(entity)
