"""Who is calling and what they may use: client keys, their limits, and usage."""
