"""Pure functions over camera frames (numpy arrays): QR today; face, document, OCR to come."""
