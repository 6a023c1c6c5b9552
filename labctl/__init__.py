"""The lab's host-side programs: what scripts/ hands over to once Python can run.

Each bash entry point in scripts/ sources lib.sh and runs one of these modules in the
repo's .venv (lib.sh's run_host_python, with labctl/requirements.txt):

    venv.py      the .venv itself, pip run only when requirements changed (standard library only)
    settings.py  the lab's settings as the host reads them (.env and the shell), in one place
    docker.py    docker and docker compose as the programs call them, and Stop (one line, exit)
    events.py    the lab's own events (lab.events, lab/schema.py), heard from the host
    cluster.py   the three-node cluster's state, from rabbitmqctl --formatter json
    demo.py      a demo's life cycle: the sender in the background, the waits, the undo
    demos.py     the demos (scripts/demo-*.sh)
    scaling.py   the autoscaler's decision rule (KEDA's QueueLength, HPA's window), pure
    autoscale.py scripts/autoscale.sh: the pool sized from task_queue, one line a decision
    running_lab.py  the running lab as the autoscaler reads and resizes it
    elastic_demo.py scripts/demo-elastic.sh: fixed pools against the elastic one
"""
