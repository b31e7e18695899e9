"""Views of the web UI: thin, they read through selectors and write through services."""
