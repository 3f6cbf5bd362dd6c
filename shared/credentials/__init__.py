"""Secrets and their checks: client keys (stored hashed), the admin key's strength, the workers'
VNC passwords."""
