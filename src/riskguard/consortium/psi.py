"""Private set intersection for members that must not reveal what they look up: the client learns which
of its tokens are reported; the serving node learns only how many tokens were asked about.

The protocol is ``openmined-psi`` (ECDH-PSI over P-256, the server's set sent as a Golomb-compressed
set). The served set is split into 16 shards by the token's first hex digit: a new report re-encodes
one shard (1/16 of the set), and the client checks its one blinded request against every shard's
setup. Tokens are already OPRF outputs, so the client first tokenises its identifiers with the token
service (see ``tokens``), then intersects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import private_set_intersection.python as openmined

SHARDS = 16
MAX_CLIENT_INPUTS = 10_000
FALSE_POSITIVE_RATE = 1e-9


class PsiError(ValueError):
    """A malformed PSI message, or a request larger than the server's setups were sized for."""


def _shard(token: str) -> int:
    return int(token[0], 16) % SHARDS


class PsiServer:
    def __init__(
        self, key: bytes | None = None, *, max_client_inputs: int = MAX_CLIENT_INPUTS, fpr: float = FALSE_POSITIVE_RATE
    ) -> None:
        self._server = openmined.server.CreateFromKey(key, True) if key else openmined.server.CreateWithNewKey(True)
        self.max_client_inputs = max_client_inputs
        self.fpr = fpr
        self._sets: list[frozenset[str]] = [frozenset() for _ in range(SHARDS)]
        self._setups: list[bytes | None] = [None] * SHARDS
        self.version = 0
        self._lock = threading.Lock()

    def update(self, tokens: Iterable[str]) -> int:
        """Replaces the served set; only the shards that changed are encoded again (lazily)."""
        shards: list[set[str]] = [set() for _ in range(SHARDS)]
        for token in tokens:
            shards[_shard(token)].add(token)
        with self._lock:
            for i, members in enumerate(shards):
                frozen = frozenset(members)
                if frozen != self._sets[i]:
                    self._sets[i] = frozen
                    self._setups[i] = None
                    self.version += 1
            return self.version

    def setups(self) -> tuple[int, list[bytes]]:
        with self._lock:
            for i, setup in enumerate(self._setups):
                if setup is None:
                    message = self._server.CreateSetupMessage(
                        self.fpr / SHARDS, self.max_client_inputs, sorted(self._sets[i]), openmined.DataStructure.GCS
                    )
                    self._setups[i] = message.SerializeToString()
            return self.version, [s for s in self._setups if s is not None]

    def process(self, request: bytes) -> bytes:
        parsed = openmined.Request()
        try:
            parsed.ParseFromString(request)
        except Exception:
            raise PsiError("not a PSI request") from None
        if len(parsed.encrypted_elements) > self.max_client_inputs:
            raise PsiError(f"a PSI request carries at most {self.max_client_inputs} tokens")
        return self._server.ProcessRequest(parsed).SerializeToString()


class PsiClient:
    """One query: ``request`` then ``intersect`` with the same client (its key blinds the request)."""

    def __init__(self) -> None:
        self._client = openmined.client.CreateWithNewKey(True)

    def request(self, tokens: list[str]) -> bytes:
        if len(tokens) > MAX_CLIENT_INPUTS:
            raise PsiError(f"query at most {MAX_CLIENT_INPUTS} tokens at a time")
        return self._client.CreateRequest(tokens).SerializeToString()

    def intersect(self, tokens: list[str], setups: list[bytes], response: bytes) -> list[str]:
        answer = openmined.Response()
        answer.ParseFromString(response)
        found: set[int] = set()
        for blob in setups:
            setup = openmined.ServerSetup()
            setup.ParseFromString(blob)
            found.update(self._client.GetIntersection(setup, answer))
        return [tokens[i] for i in sorted(found)]
