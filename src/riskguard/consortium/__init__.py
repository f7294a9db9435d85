"""The consortium risk ledger: member institutions share fraud intelligence on an append-only,
tamper-evident log (RFC 9162 Merkle tree, C2SP signed-note checkpoints, witness cosignatures), with
subject tokens from an oblivious PRF (RFC 9497) so that no raw identifier is ever shared.

Modules, one job each:

- ``merkle``: leaf and node hashing, the append-only tree, proof generation (RFC 9162 §2.1).
- ``proofs``: the verifier for inclusion and consistency proofs (RFC 9162 §2.1.3.2, §2.1.4.2).
- ``note``: C2SP signed notes, tlog checkpoints and cosignature/v1 (Ed25519).
- ``entries``: the signed entry kinds members file (report, retraction, appeal, membership, ...).
- ``state``: folds the log into governance state (roster, live reports, appeals, contributions).
- ``privacy``: free-text screening so that no raw identifier reaches the log.
- ``ledger``: the ledger interface and its SQL implementation (SQLite default, PostgreSQL at scale).
- ``witness``: checks each new checkpoint against the last one seen, cosigns, records forks.
- ``tokens``: the VOPRF token service (rate limits, audit trail) and its client.
- ``psi``: private set intersection queries (openmined-psi).
- ``details``: per-entry encrypted details, erased by deleting the key.
- ``gateway``: turns hits into published features and list entries of a riskguard instance.
- ``signals``: checks that a strategy uses consortium hits as signals, never the only ground to block.
- ``node``, ``http``, ``client``, ``cli``: a member node, its HTTP API, its HTTP client, its command.
"""
