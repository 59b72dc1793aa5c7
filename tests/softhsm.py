"""SoftHSM2 tokens for the certifier's tests: fleet/certify/devpki.py (shared with the demo and
the bench). The tests' root is unmarked: it stands in for the official-use CA."""

from fleet.certify.devpki import (
    MODULE,
    PIN,
    ROOT_NAME,
    SO_PIN,
    SoftPki,
    empty_crl,
    import_cert,
    issue,
    make_pki,
    make_root,
    shared_pki,
)

__all__ = [
    "MODULE",
    "PIN",
    "ROOT_NAME",
    "SO_PIN",
    "SoftPki",
    "empty_crl",
    "import_cert",
    "issue",
    "make_pki",
    "make_root",
    "shared_pki",
]
