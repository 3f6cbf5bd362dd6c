"""The fleet as every process sees it: workers' published status, the recovery of a dead worker's
jobs, counters, diagnoses, each account's pacing and imported cookies."""
