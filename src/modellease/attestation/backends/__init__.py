"""Attestation backends: an attester (inside the TEE) and a vendor verifier (outside) each.

* :mod:`.simulated` — software evidence for development; insecure, and says so everywhere.
* :mod:`.dcap` — Intel SGX (Gramine) and TDX quotes, verified with dcap-qvl.
* :mod:`.sev_snp` — AMD SEV-SNP reports, verified on ``cryptography`` to pinned AMD roots.
* :mod:`.gramine` and :mod:`.tsm` — the attesters' kernel interfaces (``/dev/attestation``
  and configfs-tsm).
"""
