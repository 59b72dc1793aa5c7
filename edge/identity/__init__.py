"""Citizen identity from the CCCD card: QR payload rules (cccd), province codes, card reading."""
