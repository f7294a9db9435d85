"""Private set intersection for members that must not reveal what they look up: the client learns which
of its tokens are reported; the serving node learns only how many tokens were asked about.

The protocol is ``openmined-psi`` (ECDH-PSI over P-256, the server's set sent as a Golomb-compressed
set). Encoding the served set costs one elliptic-curve multiplication per token (about 90 s for a
million on one core), so the server keeps a main setup and a small delta of tokens reported since it
was built: a new report re-encodes the delta only; a withdrawn report, or a delta grown past 1/16 of
the main set, rebuilds the main setup. The client checks its one blinded request against both. Tokens
are already OPRF outputs, so the client first tokenises its identifiers with the token service (see
``tokens``), then intersects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import private_set_intersection.python as openmined

MAX_CLIENT_INPUTS = 10_000
FALSE_POSITIVE_RATE = 1e-9
DELTA_SHARE = 16
DELTA_FLOOR = 2_000
RAW_BELOW = 5_000


class PsiError(ValueError):
    """A malformed PSI message, or a request larger than the server's setups were sized for."""


class PsiServer:
    def __init__(
        self, key: bytes | None = None, *, max_client_inputs: int = MAX_CLIENT_INPUTS, fpr: float = FALSE_POSITIVE_RATE
    ) -> None:
        self._server = openmined.server.CreateFromKey(key, True) if key else openmined.server.CreateWithNewKey(True)
        self.max_client_inputs = max_client_inputs
        self.fpr = fpr
        self._main: frozenset[str] = frozenset()
        self._delta: frozenset[str] = frozenset()
        self._main_setup: bytes | None = None
        self._delta_setup: bytes | None = None
        self.version = 0
        self._lock = threading.Lock()

    def update(self, tokens: Iterable[str]) -> int:
        """Sets the served set. Additions go to the delta; a removal, or a large delta, rebuilds all."""
        wanted = frozenset(tokens)
        with self._lock:
            if wanted == self._main | self._delta:
                return self.version
            self.version += 1
            added = wanted - self._main
            if self._main <= wanted and len(added) <= max(DELTA_FLOOR, len(self._main) // DELTA_SHARE):
                self._delta, self._delta_setup = added, None
            else:
                self._main, self._main_setup = wanted, None
                self._delta, self._delta_setup = frozenset(), None
            return self.version

    def _encode(self, tokens: frozenset[str]) -> bytes:
        # a Golomb-compressed set is compact for large sets (and fails to build for tiny ones in
        # openmined-psi 2.0): small sets go raw (33 bytes a token)
        structure = openmined.DataStructure.GCS if len(tokens) >= RAW_BELOW else openmined.DataStructure.RAW
        message = self._server.CreateSetupMessage(self.fpr / 2, self.max_client_inputs, sorted(tokens), structure)
        return message.SerializeToString()

    def setups(self) -> tuple[int, list[bytes]]:
        """The setup messages the client checks its answer against (encoded lazily)."""
        with self._lock:
            if self._main_setup is None:
                self._main_setup = self._encode(self._main)
            out = [self._main_setup]
            if self._delta:
                if self._delta_setup is None:
                    self._delta_setup = self._encode(self._delta)
                out.append(self._delta_setup)
            return self.version, out

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
