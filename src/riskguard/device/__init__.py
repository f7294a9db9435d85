"""Trusted devices: key attestation at registration, transaction signing, device reputation.

- ``providers/``: one interface (``AttestationProvider.verify``) and its providers: Android Key
  Attestation, WebAuthn / FIDO2, Apple App Attest, an OEM/IFAA slot, and unattested software keys;
- ``trust.py``: the configured roots, app identities and revocation lists (``RISKGUARD_DEVICE_CONFIG``);
- ``registry.py``: registered keys and their account bindings (tables in ``tables.py``, migration 0006);
- ``nonces.py``: single-use challenges bound to a transaction digest;
- ``signing.py``: the signature schemes a decision may carry in ``attributes.device_signature``;
- ``reputation.py``: ``device.trust`` (0-100) and its reasons;
- ``stage.py``: the pipeline stage that verifies a decision's signature and binds ``device.*`` for rules;
- ``service.py``: what the HTTP routes (``http.py``) and the library call;
- ``client.py``: the reference client (P-256 key, test attestation, challenge, sign);
- ``testing.py``: throwaway attestation authorities for tests, the demo and the reference client.
"""
