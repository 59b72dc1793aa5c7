"""Use cases behind the screens; they depend on ports and vision functions, never on the web UI."""
