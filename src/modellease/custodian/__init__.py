"""The custodian: its home (identity and data keys), sealing, and the control plane's
trust kernels — the budget ledger (:mod:`.ledger`) and the one choke point that releases a
model's data key to attested code (:mod:`.key_release`)."""
