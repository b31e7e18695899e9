"""Marketplace services (writes). Reads live in marketplace/selectors.py."""
