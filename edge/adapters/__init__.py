"""One module per backend; vendor libraries are imported lazily inside each adapter."""
