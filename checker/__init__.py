"""scripts/check-worker.sh's orchestrator: runs a student's own worker in copies
against the lab and checks it (checks.py), from what the broker shows (broker.py)
and what the copies print (copies.py); saves the run as a timeline (timeline.py)."""
