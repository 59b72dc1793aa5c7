"""Documents the kiosk reads and makes: the originals citizens scan (type, fields), the e-copy."""
