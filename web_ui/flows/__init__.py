"""One blueprint per citizen flow (PRODUCT.md section 3) plus the start screen."""
