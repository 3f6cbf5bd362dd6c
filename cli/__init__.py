"""The `lmarena-bridge` command."""
