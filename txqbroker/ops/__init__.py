"""
Seeing and steering what runs (issue 13): what ``txqbroker info``,
``txqbroker monitor`` and ``txqbroker failed`` show and do, and the opt-in
HTTP side of ``twistd qbroker --http`` (health checks, Prometheus metrics
and a status page).

* :mod:`txqbroker.ops.overview`: one snapshot of a queue and its consumers;
* :mod:`txqbroker.ops.deadletters`: why packages were dead-lettered, and
  listing, retrying and purging them;
* :mod:`txqbroker.ops.metrics`: the Prometheus metrics of one consumer;
* :mod:`txqbroker.ops.web`: the HTTP resources;
* :mod:`txqbroker.ops.tables` and :mod:`txqbroker.ops.page`: the terminal
  tables and the HTML page.
"""
