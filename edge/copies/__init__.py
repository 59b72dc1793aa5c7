"""Electronic certified copies: code, signed PDF with watermark and QR, verification, store."""
