"""
The fault-injection suite (issue 10): real producer and ``twistd qbroker``
processes against real (or stand-in) servers, while the test kills,
freezes, restarts and cuts them; every run of every task is recorded in a
file that survives ``kill -9``, and each scenario accounts for every task.
"""
