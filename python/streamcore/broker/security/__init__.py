"""Authentication on the broker's listeners: TLS (:mod:`.tls`), SASL mechanisms
(:mod:`.mechanisms`), the per-connection SASL exchange (:mod:`.sasl`) and the SCRAM
credentials kept in the data directory (:mod:`.credentials`).

docs/security.md describes the settings and the behaviour clients see.
"""
