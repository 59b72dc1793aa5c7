"""Central's certifier (issue 16): the officers' queue and workstation, the electronic
certification book, the copy's legal statement, the officer's and the agency's signatures through
PKCS#11, and the public verification page. docs/ecopy.md describes the whole."""
