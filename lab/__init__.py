"""What every image of the lab knows alike: the broker's topology (topology.py),
the records and events the workers send and what they must look like (schema.py),
and how a client finds a broker that answers (brokers.py). Each Python image copies
this package at build time; the tests import it from the repo."""
